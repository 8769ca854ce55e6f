"""`meprop plot`: every kind writes a real PNG from run folders written by the test; missing data is a UserError."""
from __future__ import annotations

import struct

import matplotlib.pyplot as plt
import pytest

from fake_runs import write_run
from meprop_cli import plot, results
from meprop_cli.errors import UserError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def curve(scores: list[float], **extra) -> list[dict]:
    return [{"epoch": e, "step": 100 * e, "train_loss": 1.0 / e, "dev": {"accuracy": s}, "best": True, **extra}
            for e, s in enumerate(scores, 1)]


@pytest.fixture
def figure4(tmp_path):
    """Fig. 4 runs: baseline, meProp and random at k = 10, 20, 40 (two seeds at 20), small h' = 20."""
    write_run(tmp_path, "b", method="baseline", test=0.978, metrics=curve([0.95, 0.97, 0.975]))
    for k, score in ((10, 0.979), (20, 0.98), (40, 0.981)):
        write_run(tmp_path, f"m{k}", method="meprop", k=k, test=score, metrics=curve([0.96, 0.975, 0.98]))
        write_run(tmp_path, f"r{k}", method="random", k=k, test=score - 0.05)
    write_run(tmp_path, "m20s2", method="meprop", k=20, seed=2, test=0.982)
    write_run(tmp_path, "s20", method="small", k=20, test=0.9577)
    write_run(tmp_path, "failed", method="meprop", k=80, status="failed", error="boom")
    return tmp_path


@pytest.mark.parametrize("kind", ["ratio", "random", "small", "curves"])
def test_each_figure_kind_writes_a_png_of_plausible_size(figure4, tmp_path, kind):
    out = tmp_path / "figs" / f"{kind}.png"
    left_out = plot.make_plot([figure4], kind, out)
    width, height = png_size(out)
    assert (width, height) == (660, 504)  # one panel of 5.5 x 4.2 inches at 120 dpi
    assert out.stat().st_size > 10_000
    assert [run.path.name for run in left_out] == ["failed"]


def test_one_panel_per_task_and_optimizer(figure4, tmp_path):
    write_run(figure4, "ada_b", method="baseline", optimizer="adagrad", test=0.975)
    write_run(figure4, "ada_m", method="meprop", optimizer="adagrad", k=10, test=0.98)
    out = tmp_path / "two.png"
    plot.make_plot([figure4], "ratio", out)
    assert png_size(out) == (1320, 504)


def pruned(scores: list[float], checks: list[list[list[int]]], per_epoch: int = 100) -> list[dict]:
    """metrics.jsonl of a meSimp run: each epoch's prune checks (evenly spaced) and the sizes at its end."""
    lines = curve(scores)
    for epoch, (line, sizes) in enumerate(zip(lines, checks), 1):
        steps = [(epoch - 1) * per_epoch + per_epoch * (c + 1) // len(sizes) for c in range(len(sizes))]
        line[results.PRUNE_CHECKS] = [{"epoch": epoch, "step": step, "pruned": True, results.SIZES: size}
                                      for step, size in zip(steps, sizes)]
        line[results.SIZES] = sizes[-1]
    return lines


def test_mesimp_and_meact_figures_read_their_metrics_keys(tmp_path):
    write_run(tmp_path, "simp", method="mesimp", k=160, tested=[300, 200],
              metrics=pruned([0.97, 0.98], [[[450, 400], [300, 200]], [[300, 200], [300, 200]]]))
    write_run(tmp_path, "base", method="baseline",  # constant sizes: not drawn
              metrics=[dict(line, **{results.SIZES: [500, 500]}) for line in curve([0.97, 0.98])])
    write_run(tmp_path, "act", method="meact", k=None,
              metrics=[dict(line, **{results.ACTIVE_FRACTION: f, results.UPDATE_SIZE: u, results.MEACT_ACTING: a})
                       for line, f, u, a in zip(curve([0.97, 0.98]), ([1.0, 1.0], [0.3, 0.4]), (1e-3, 2e-4),
                                                (False, True))])
    for kind in ("mesimp", "meact"):
        out = tmp_path / f"{kind}.png"
        plot.make_plot([tmp_path], kind, out)
        width, _ = png_size(out)
        assert width == {"mesimp": 660, "meact": 1980}[kind]  # meact: dev, active fraction, update


def test_mesimp_sizes_are_traced_through_every_prune_check_at_its_fraction_of_an_epoch(tmp_path):
    write_run(tmp_path, "simp", method="mesimp", k=160,
              metrics=pruned([0.97, 0.98], [[[450, 400], [300, 200]], [[290, 200], [280, 190]]]))
    run = results.load_run(tmp_path / "simp")
    assert plot.size_trace(run) == [(0.0, [500, 500]), (0.5, [450, 400]), (1.0, [300, 200]), (1.5, [290, 200]),
                                    (2.0, [280, 190])]
    # without prune checks in a line, the evaluation's sizes (results.SIZES) at its step
    run.metrics = [{"epoch": 1, "step": 50, results.SIZES: [400, 400]},
                   {"epoch": 1, "step": 100, "train_loss": 0.3, results.SIZES: [300, 300]}]
    assert plot.size_trace(run) == [(0.0, [500, 500]), (0.5, [400, 400]), (1.0, [300, 300])]


def test_mesimp_figure_has_one_panel_per_task_with_a_line_per_group_and_run(tmp_path, monkeypatch):
    for seed in (1, 2):
        write_run(tmp_path, f"mnist{seed}", method="mesimp", k=160, seed=seed, tested=[450, 400],
                  metrics=pruned([0.97], [[[450, 400], [300, 200 + seed]]]))
    write_run(tmp_path, "pos", task="pos", method="mesimp", k=20, hidden=[500], initial=[500, 500],
              metrics=pruned([0.9], [[[100, 90], [13, 3]]]))
    out = tmp_path / "sizes.png"
    drawn = []
    original = plot.plt.Axes.plot

    def spy(ax, xs, ys, **kwargs):
        drawn.append((kwargs.get("label"), list(xs), list(ys)))
        return original(ax, xs, ys, **kwargs)

    monkeypatch.setattr(plot.plt.Axes, "plot", spy)
    plot.make_plot([tmp_path], "mesimp", out)
    assert png_size(out) == (1320, 504)
    assert drawn[3][1:] == ([0.0, 0.5, 1.0], [500, 400, 202])  # seed 2's layer 2 through its checks
    run = "mesimp h=500→450,400 k=160 prune rate 0.1 seed"
    assert [label for label, _, _ in drawn] == [f"{run} 1 layer 1", f"{run} 1 layer 2", f"{run} 2 layer 1",
                                                f"{run} 2 layer 2", "layer 1 left", "layer 1 right"]


def test_a_figure_without_its_data_is_a_user_error_naming_what_is_missing(tmp_path):
    write_run(tmp_path, "m", method="meprop", k=20, metrics=curve([0.9]))
    with pytest.raises(UserError, match="random"):
        plot.make_plot([tmp_path], "random", tmp_path / "x.png")
    with pytest.raises(UserError, match="hidden sizes"):
        plot.make_plot([tmp_path], "mesimp", tmp_path / "x.png")
    write_run(tmp_path, "guessed", method="mesimp", k=160,  # sizes under a key results.py does not define
              metrics=[dict(line, hidden=[400 - e, 300]) for e, line in enumerate(curve([0.9, 0.95]))],
              drop=(results.HIDDEN_INITIAL,))
    with pytest.raises(UserError, match="hidden sizes"):
        plot.make_plot([tmp_path], "mesimp", tmp_path / "x.png")
    with pytest.raises(UserError, match="mean_abs_update .trainer.track_updates=true. or active_fraction"):
        plot.make_plot([tmp_path], "meact", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_evaluations_within_an_epoch_sit_at_their_fraction_of_it():
    metrics = [{"epoch": 1, "step": 50, results.SIZES: [400]}, {"epoch": 1, "step": 200, "train_loss": 0.3},
               {"epoch": 2, "step": 300, results.SIZES: [300]}]
    assert [plot.position(line, metrics) for line in metrics] == [0.25, 1.0, 1.5]
    assert plot.position({"epoch": 3}, []) == 3.0


def test_meact_figure_draws_each_layer_and_marks_where_meact_starts(tmp_path, monkeypatch):
    write_run(tmp_path, "base", method="baseline",
              metrics=[dict(line, **{results.UPDATE_SIZE: u}) for line, u in zip(curve([0.97, 0.98, 0.98]),
                                                                                 (3e-4, 2e-4, 2e-4))])
    write_run(tmp_path, "act", method="meact", k=None,
              metrics=[dict(line, **{results.ACTIVE_FRACTION: f, results.UPDATE_SIZE: u, results.MEACT_ACTING: a})
                       for line, f, u, a in zip(curve([0.97, 0.98, 0.99]), ([1.0, 1.0], [0.3, 0.4], [0.2, 0.3]),
                                                (3e-4, 5e-5, 3e-5), (False, True, True))])
    drawn, marks = [], []
    original_plot, original_axvline = plot.plt.Axes.plot, plot.plt.Axes.axvline
    monkeypatch.setattr(plot.plt.Axes, "plot", lambda ax, xs, ys, **kw: drawn.append(
        (kw.get("label"), list(xs), list(ys))) or original_plot(ax, xs, ys, **kw))
    monkeypatch.setattr(plot.plt.Axes, "axvline", lambda ax, x, **kw: marks.append(x) or original_axvline(ax, x, **kw))
    plot.make_plot([tmp_path], "meact", tmp_path / "meact.png")
    layers = [(label, ys) for label, _, ys in drawn if label and "layer" in label]
    assert [ys for _, ys in layers] == [[1.0, 0.3, 0.2], [1.0, 0.4, 0.3]]
    updates = [ys for label, _, ys in drawn if ys and max(ys) < 1e-2 and not (label and "layer" in label)]
    assert sorted(updates) == sorted([[3e-4, 2e-4, 2e-4], [3e-4, 5e-5, 3e-5]])
    assert set(marks) == {1.5}  # the meAct run's first acting epoch is 2 (dev and update panels)


def test_the_diagnostics_figure_draws_dev_and_the_four_statistics_of_each_layer(tmp_path, monkeypatch):
    watch = {"mean_abs_activation": 2.0, "dead_fraction": 0.1, "nonzero_negative_fraction": 0.47,
             "kept_negative_fraction": 0.6, "gradient_cosine": 0.7}
    for name, method in (("base", "baseline"), ("top", "meprop")):
        write_run(tmp_path, name, method=method, metrics=[dict(line, **{results.DIAGNOSTICS: [watch, watch]})
                                                          for line in curve([0.9, 0.95])])
    drawn = []
    original = plt.Axes.plot
    monkeypatch.setattr(plt.Axes, "plot", lambda ax, *a, **k: (drawn.append(k.get("linestyle", "-")),
                                                                original(ax, *a, **k))[1])
    plot.make_plot([tmp_path], "diagnostics", tmp_path / "d.png")
    assert png_size(tmp_path / "d.png")[0] == 3300  # five panels
    # per run: dev, and per layer the four statistics plus the dashed all-nonzero negative share
    assert len(drawn) == 2 * (1 + 2 * 5) and drawn.count("--") == 2 * 2
    write_run(tmp_path / "plain", "p", method="meprop", metrics=curve([0.9]))
    with pytest.raises(UserError, match=r"diagnostics \(trainer.diagnostics=true\)"):
        plot.make_plot([tmp_path / "plain"], "diagnostics", tmp_path / "x.png")
