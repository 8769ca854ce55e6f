"""What `meprop table --out`, `meprop plot --out` and `meprop tag` write: every output path they cannot write is one
sentence and exit 2, never a traceback; writes are atomic (a failed one keeps the old file and leaves no temp
file); tag never writes over its input or checkpoint, and refuses a file that is not a tagger checkpoint."""
from __future__ import annotations

import errno
import os
import sys
import threading
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from conftest import run_meprop
from fake_runs import write_run
from meprop_cli import results
from meprop_cli.cli import config_dir, main
from meprop_cli.config import register_configs
from meprop_cli.data.conllu import read_conllu
from meprop_cli.errors import OutputError
from meprop_cli.train import train

sys.path.insert(0, str(Path(__file__).parent / "tasks"))
from test_pos import TINY, write_tiny_ewt  # noqa: E402


def cli(args: list, capsys) -> tuple[int, str]:
    """Run `meprop ARGS` in this process: (exit code, stderr)."""
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


@pytest.fixture
def runs(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "b", method="baseline", metrics=[{"epoch": 1, "step": 10, "train_loss": 1.0,
                                                       "dev": {"accuracy": 0.9}}])
    write_run(root, "m", method="meprop", metrics=[{"epoch": 1, "step": 10, "train_loss": 1.0,
                                                     "dev": {"accuracy": 0.95}}])
    return root


def table_args(root, out):
    return ["table", root, "--out", out]


def plot_args(root, out):
    return ["plot", root, "--kind", "curves", "--out", out]


COMMANDS = {"table": (table_args, "t.md"), "plot": (plot_args, "f.png")}


def blocked_paths(tmp_path, name: str) -> dict[str, tuple[Path, str]]:
    """Output paths that cannot be written -> the message after 'could not write PATH: '."""
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    return {"parent is a file": (tmp_path / "afile" / name, f"{tmp_path / 'afile'} is a file, not a folder; give a "
                                                            "path in a folder"),
            "a folder to make under a file": (tmp_path / "afile" / "sub" / name,
                                              f"{tmp_path / 'afile'} is a file, not a folder; give a path in a folder"),
            "an existing folder": (tmp_path / "adir", "it is a folder; give the path of a file")}


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", ["parent is a file", "a folder to make under a file", "an existing folder"])
def test_an_output_path_that_cannot_be_written_is_one_sentence(runs, tmp_path, capsys, command, case):
    make_args, name = COMMANDS[command]
    out, reason = blocked_paths(tmp_path, name)[case]
    code, err = cli(make_args(runs, out), capsys)
    if command == "plot" and case == "an existing folder":  # checked before drawing
        reason = f"--out {out} is a folder; give the figure's file, for example {out / 'figure.png'}"
        assert err == f"meprop: error: {reason}\n"
    else:
        assert err == f"meprop: error: could not write {out}: {reason}\n"
    assert code == 2 and not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize("command", COMMANDS)
def test_no_permission_to_write_is_one_sentence(runs, tmp_path, capsys, monkeypatch, command):
    make_args, name = COMMANDS[command]
    locked = tmp_path / "locked"
    locked.mkdir()
    real_open = open

    def refuse(path, *args, **kwargs):  # as in a read-only folder (chmod has no effect for root)
        if str(path).startswith(str(locked)):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refuse)
    code, err = cli(make_args(runs, locked / name), capsys)
    assert (code, err) == (2, f"meprop: error: could not write {locked / name}: Permission denied in {locked}; give a "
                              "path in a folder you can write to\n")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
@pytest.mark.parametrize("command", COMMANDS)
def test_a_read_only_folder_is_one_sentence(runs, tmp_path, capsys, command):
    make_args, name = COMMANDS[command]
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    code, err = cli(make_args(runs, locked / "sub" / name), capsys)
    assert (code, err) == (2, f"meprop: error: could not write {locked / 'sub' / name}: Permission denied in {locked}; "
                              "give a path in a folder you can write to\n")


def fill_the_disk(monkeypatch):
    """The disk fills as a file is written: fsync fails, as it does on a full disk."""
    def fsync(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_full_disk_keeps_the_previous_output_and_no_temp_file(runs, tmp_path, capsys, monkeypatch, command):
    make_args, name = COMMANDS[command]
    out = tmp_path / name
    out.write_bytes(b"the previous output")
    fill_the_disk(monkeypatch)
    code, err = cli(make_args(runs, out), capsys)
    assert (code, err) == (2, f"meprop: error: could not write {out}: No space left on device (the file keeps what "
                              "it held); free some space or write to another disk\n")
    assert out.read_bytes() == b"the previous output" and sorted(p.name for p in tmp_path.iterdir()) == sorted([name, "runs"])


@pytest.mark.parametrize("command", COMMANDS)
def test_outputs_go_into_new_folders_and_through_symlinks(runs, tmp_path, capsys, command):
    make_args, name = COMMANDS[command]
    assert cli(make_args(runs, tmp_path / "new" / "sub" / name), capsys)[0] == 0
    target, link = tmp_path / f"target-{name}", tmp_path / f"link-{name}"
    target.write_text("old")
    link.symlink_to(target)
    assert cli(make_args(runs, link), capsys)[0] == 0
    assert link.is_symlink() and target.stat().st_size > 100  # the file it points to is replaced, not the link


def test_a_pipe_or_device_is_written_directly_not_renamed_over(tmp_path):
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    got = []
    reader = threading.Thread(target=lambda: got.append(pipe.read_text()))
    reader.start()
    results.write_text_atomic(pipe, "a table\n")
    reader.join(timeout=10)
    assert got == ["a table\n"] and pipe.is_fifo() and not list(tmp_path.glob("*.tmp"))


def test_an_output_that_is_the_input_benchmark_file_is_refused(tmp_path, capsys):
    bench = tmp_path / "bench.csv"
    bench.write_text("batch,in,out,k,mode,dense_ms,sparse_ms\n10,784,500,20,topk,0.5,0.1\n")
    code, err = cli(["table", bench, "--format", "csv", "--out", tmp_path / "." / "bench.csv"], capsys)
    assert (code, err) == (2, f"meprop: error: --out {tmp_path / '.' / 'bench.csv'} is the input file {bench}; give "
                              "another path for the table\n")
    assert bench.read_text().startswith("batch,")


@pytest.mark.parametrize("name, why", [("fig.xyz", ".xyz is not a figure format"),
                                       ("fig", "has no suffix to name the figure's format")])
def test_a_figure_suffix_that_names_no_format_is_refused_before_drawing(runs, tmp_path, capsys, name, why):
    code, err = cli(plot_args(runs, tmp_path / name), capsys)
    assert (code, err) == (2, f"meprop: error: --out {tmp_path / name}: {why}; end the name with .png (or .pdf, "
                              ".svg, .eps, .jpg, .jpeg)\n")
    assert not (tmp_path / name).exists() and not (tmp_path / f"{name}.png").exists()


@pytest.mark.parametrize("suffix, magic", [(".pdf", b"%PDF"), (".svg", b"<?xml"), (".PNG", b"\x89PNG")])
def test_a_figure_is_written_in_the_format_of_its_suffix(runs, tmp_path, capsys, suffix, magic):
    assert cli(plot_args(runs, tmp_path / f"fig{suffix}"), capsys)[0] == 0
    assert (tmp_path / f"fig{suffix}").read_bytes().startswith(magic)


# -- meprop tag -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tagger(tmp_path_factory):
    """A one-epoch POS tagger's best.pt, and the CoNLL-U file to tag (a copy, per test: see tag_input)."""
    root = write_tiny_ewt(tmp_path_factory.mktemp("data"))
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[*TINY, f"data_root={root}", "method=meprop", "topk=3",
                                                       "trainer.max_epochs=1"])
    GlobalHydra.instance().clear()
    run = tmp_path_factory.mktemp("run")
    train(cfg, run)
    return run / results.BEST_CHECKPOINT, root / "ud-english-ewt" / "en_ewt-ud-test.conllu"


@pytest.fixture
def tag_input(tagger, tmp_path):
    given = tmp_path / "in.conllu"
    given.write_bytes(tagger[1].read_bytes())
    return given


def test_tag_writes_the_tagged_file(tagger, tag_input, tmp_path, capsys):
    assert cli(["tag", tagger[0], tag_input, tmp_path / "out" / "tagged.conllu"], capsys) == (0, "")
    assert len(read_conllu(tmp_path / "out" / "tagged.conllu")) == len(read_conllu(tag_input))


@pytest.mark.parametrize("spelling", ["same", "another spelling", "a symlink to it", "a hard link to it",
                                      "the checkpoint"])
def test_tag_never_writes_over_its_input_or_checkpoint(tagger, tag_input, tmp_path, capsys, monkeypatch, spelling):
    original = tag_input.read_bytes()
    monkeypatch.chdir(tmp_path)
    output = {"same": tag_input, "another spelling": Path("sub/../in.conllu"), "a symlink to it": tmp_path / "link",
              "a hard link to it": tmp_path / "hard", "the checkpoint": tagger[0]}[spelling]
    (tmp_path / "sub").mkdir()
    (tmp_path / "link").symlink_to(tag_input)
    os.link(tag_input, tmp_path / "hard")
    checkpoint_bytes = tagger[0].read_bytes()
    code, err = cli(["tag", tagger[0], tag_input, output], capsys)
    role, given = ("checkpoint", tagger[0]) if spelling == "the checkpoint" else ("input", tag_input)
    assert (code, err) == (2, f"meprop: error: OUTPUT {output} is the {role} file {given}: tagging would overwrite it; "
                              "give another output path\n")
    assert tag_input.read_bytes() == original and tagger[0].read_bytes() == checkpoint_bytes


@pytest.mark.parametrize("case", ["parent is a file", "a folder to make under a file", "an existing folder"])
def test_tag_output_that_cannot_be_written_is_one_sentence(tagger, tag_input, tmp_path, capsys, case):
    out, reason = blocked_paths(tmp_path, "tagged.conllu")[case]
    code, err = cli(["tag", tagger[0], tag_input, out], capsys)
    assert (code, err) == (2, f"meprop: error: could not write {out}: {reason}\n")
    assert not list(tmp_path.rglob("*.tmp"))


def test_tag_on_a_full_disk_keeps_the_previous_output_and_no_temp_file(tagger, tag_input, tmp_path, capsys,
                                                                       monkeypatch):
    out = tmp_path / "tagged.conllu"
    out.write_text("the previous output")
    fill_the_disk(monkeypatch)
    code, err = cli(["tag", tagger[0], tag_input, out], capsys)
    assert code == 2 and err.startswith(f"meprop: error: could not write {out}: No space left on device")
    assert out.read_text() == "the previous output" and not list(tmp_path.glob("*.tmp"))


def test_write_conllu_removes_its_temp_file_when_the_write_fails(tmp_path, monkeypatch):
    from meprop_cli.data.conllu import write_conllu

    fill_the_disk(monkeypatch)
    with pytest.raises(OutputError, match="No space left on device"):
        write_conllu(tmp_path / "a.conllu", [])
    assert list(tmp_path.iterdir()) == []


def not_a_checkpoint(tmp_path, tagger) -> dict[str, tuple[Path, str]]:
    """Files given as CKPT -> the start of the message after the path."""
    data = tagger[0].read_bytes()
    (tmp_path / "text.pt").write_text("hello\n")
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "half.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "result.json").write_text('{"status": "completed"}\n')
    torch.save({"model": {}, "config": {"task": {"name": "digits"}}}, tmp_path / "digits.pt")
    payload = torch.load(tagger[0], weights_only=False)
    torch.save({k: v for k, v in payload.items() if k != "task_state"}, tmp_path / "no_vocabularies.pt")
    torch.save({**payload, "model": {"output.weight": torch.zeros(1)}}, tmp_path / "other_weights.pt")
    cannot = "is not a meprop checkpoint (torch cannot load it: "
    return {"a text file": (tmp_path / "text.pt", cannot), "an empty file": (tmp_path / "empty.pt", cannot),
            "half of a real best.pt": (tmp_path / "half.pt", cannot),
            "a result.json": (tmp_path / "result.json", cannot),
            "another task's checkpoint": (tmp_path / "digits.pt", "is a task=digits checkpoint; give the best.pt of a "
                                                                  "task=pos run"),
            "without vocabularies": (tmp_path / "no_vocabularies.pt", "lacks the tagger's vocabularies (task_state)"),
            "weights of another model": (tmp_path / "other_weights.pt", "is a task=pos checkpoint whose vocabularies "
                                                                        "or weights do not fit its config")}


@pytest.mark.parametrize("case", ["a text file", "an empty file", "half of a real best.pt", "a result.json",
                                  "another task's checkpoint", "without vocabularies", "weights of another model"])
def test_tag_refuses_what_is_not_a_tagger_checkpoint_in_one_sentence(tagger, tag_input, tmp_path, capsys, case):
    checkpoint, message = not_a_checkpoint(tmp_path, tagger)[case]
    code, err = cli(["tag", checkpoint, tag_input, tmp_path / "out.conllu"], capsys)
    assert code == 2 and err.startswith(f"meprop: error: {checkpoint} {message}") and err.count("\n") == 1
    assert not (tmp_path / "out.conllu").exists()


def test_tag_refuses_an_input_without_sentences(tagger, tmp_path, capsys):
    (tmp_path / "empty.conllu").write_text("")
    code, err = cli(["tag", tagger[0], tmp_path / "empty.conllu", tmp_path / "out.conllu"], capsys)
    assert (code, err) == (2, f"meprop: error: {tmp_path / 'empty.conllu'} holds no sentence; give a CoNLL-U file with "
                              "sentences to tag\n")


def test_the_commands_end_in_one_line_without_a_traceback(tagger, tag_input, runs, tmp_path):
    """As a user runs them: the entry point, another working directory."""
    (tmp_path / "afile").write_text("x")
    for args, message in (
            (["table", runs, "--out", tmp_path / "afile" / "t.md"], f"could not write {tmp_path / 'afile' / 't.md'}"),
            (["plot", runs, "--kind", "curves", "--out", tmp_path / "fig.xyz"], ".xyz is not a figure format"),
            (["tag", tagger[0], tag_input, tag_input], "tagging would overwrite it"),
            (["tag", tmp_path / "afile", tag_input, tmp_path / "o.conllu"], "is not a meprop checkpoint")):
        done = run_meprop([str(a) for a in args], cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, (args, done.stderr)
        assert done.stderr.startswith("meprop: error: ") and message in done.stderr
