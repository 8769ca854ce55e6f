"""The POS task on a tiny treebank written by the test: config, batches, training, predictions, reuse."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

from meprop_cli.cli import main
from meprop_cli.data.conllu import read_conllu
from meprop_cli.methods import build_method
from meprop_cli.tasks import build_task
from meprop_cli.tasks.pos import PREDICTIONS_FILE, load_tagger, tag_sentences
from meprop_cli.train import train

from conftest import run_meprop

LEXICON = {  # word -> (UPOS, XPOS)
    "the": ("DET", "DT"), "a": ("DET", "DT"), "dog": ("NOUN", "NN"), "cat": ("NOUN", "NN"),
    "dogs": ("NOUN", "NNS"), "John": ("PROPN", "NNP"), "Mary": ("PROPN", "NNP"), "sees": ("VERB", "VBZ"),
    "saw": ("VERB", "VBD"), "big": ("ADJ", "JJ"), "42": ("NUM", "CD"), ".": ("PUNCT", "."),
}


def sentence_lines(rng: random.Random, number: int) -> list[str]:
    def noun_phrase():
        if rng.random() < 0.3:
            return [rng.choice(["John", "Mary"])]
        words = [rng.choice(["the", "a", "42"])]
        if rng.random() < 0.5:
            words.append("big")
        return words + [rng.choice(["dog", "cat", "dogs"])]

    words = noun_phrase() + [rng.choice(["sees", "saw"])] + noun_phrase() + ["."]
    lines = [f"# sent_id = {number}", f"# text = {' '.join(words)}"]
    for i, w in enumerate(words, start=1):
        upos, xpos = LEXICON[w]
        lines.append(f"{i}\t{w}\t{w.lower()}\t{upos}\t{xpos}\t_\t0\tdep\t_\t_")
    return lines


def write_tiny_ewt(root: Path, sizes=(60, 15, 15)) -> Path:
    folder = root / "ud-english-ewt"
    folder.mkdir(parents=True)
    rng = random.Random(0)
    for split, n in zip(("train", "dev", "test"), sizes):
        text = "\n\n".join("\n".join(sentence_lines(rng, i)) for i in range(n)) + "\n\n"
        (folder / f"en_ewt-ud-{split}.conllu").write_text(text, encoding="utf-8")
    return root


TINY = ["task=pos", "task.hidden=[8]", "task.word_dim=6", "task.feature_dim=3", "task.batch_size=4",
        "task.eval_batch_size=7", "trainer.threads=1", "trainer.progress=none"]


@pytest.fixture
def tiny_root(tmp_path):
    return write_tiny_ewt(tmp_path / "data")


def loaded_task(make_cfg, root, overrides=()):
    cfg = make_cfg([*TINY, f"data_root={root}", *overrides])
    task = build_task(cfg.task, root)
    task.load()
    return cfg, task


def test_pos_topk_10_composes_exactly_as_typed(make_cfg):
    cfg = make_cfg(["task=pos", "topk=10"])
    assert cfg.task.name == "pos" and cfg.topk == 10 and cfg.topk_output is None
    assert cfg.task.hidden == [500] and cfg.task.word_dim + 7 * cfg.task.feature_dim == 190
    method = build_method(make_cfg(["task=pos", "topk=10", "method=meprop"]))
    assert method.sparsity("hidden").k == 10 and method.sparsity("output") is None


def test_small_method_gives_hidden_equal_to_k(make_cfg, tiny_root):
    cfg, task = loaded_task(make_cfg, tiny_root, ["method=small", "topk=3"])
    model = task.build_model(build_method(cfg))
    assert model.lstm.layers[0][0].hidden_size == 3 and model.lstm.layers[0][0].sparsity is None


def test_meprop_method_puts_k_in_every_gate_and_full_output(make_cfg, tiny_root):
    cfg, task = loaded_task(make_cfg, tiny_root, ["method=meprop", "topk=2"])
    model = task.build_model(build_method(cfg))
    for direction in model.lstm.layers[0]:
        assert direction.sparsity.k == 2 and direction.sparsity.mode == "topk"
    assert model.output.sparsity is None


def test_vocabularies_come_from_train_and_tags_from_the_chosen_column(make_cfg, tiny_root):
    _, task = loaded_task(make_cfg, tiny_root)
    assert set(task.tags.items) <= {x for _, x in LEXICON.values()} and "NNP" in task.tags.items
    _, upos_task = loaded_task(make_cfg, tiny_root, ["task.tagset=upos"])
    assert set(upos_task.tags.items) <= {u for u, _ in LEXICON.values()} and "PROPN" in upos_task.tags.items
    assert task.words.id("john") > 0 and task.words.id("unseen") == 0


def test_batch_packs_every_token_once_and_word_dropout_hits_rare_words(make_cfg, tiny_root):
    _, task = loaded_task(make_cfg, tiny_root, ["task.word_dropout=1000"])
    indices = [0, 1, 2, 3]
    batch = task.make_batch("train", indices)
    assert len(batch.tags) == sum(len(task.encoded["train"][i].tags) for i in indices)
    first = batch.sentences[0]  # the longest sentence, packed as row 0 at every step
    assert torch.equal(batch.tags[batch.packing.rows == 0], task.encoded["train"][first].tags)
    dropped = task.make_batch("train", indices, torch.Generator().manual_seed(0))
    assert (dropped.words == 0).float().mean() > 0.5  # α = 1000: almost every word becomes UNK
    assert torch.equal(dropped.tags, batch.tags)


def test_training_learns_the_tiny_treebank_and_writes_predictions(make_cfg, tiny_root, tmp_path):
    cfg = make_cfg([*TINY, f"data_root={tiny_root}", "method=meprop", "topk=4", "trainer.max_epochs=10",
                    "task.batch_size=6", "optim.lr=0.02", "task.dropout=0"])
    record = train(cfg, tmp_path / "run")
    assert record["status"] == "completed"
    assert record["test"]["accuracy"] > 0.9  # majority tag alone scores about 0.3
    predicted = read_conllu(tmp_path / "run" / PREDICTIONS_FILE)
    gold = read_conllu(tiny_root / "ud-english-ewt" / "en_ewt-ud-test.conllu")
    assert [[t.form for t in s.tokens] for s in predicted] == [[t.form for t in s.tokens] for s in gold]
    assert [s.comments for s in predicted] == [s.comments for s in gold]
    agree = sum(p.xpos == g.xpos for ps, gs in zip(predicted, gold) for p, g in zip(ps.tokens, gs.tokens))
    assert agree / sum(len(s) for s in gold) == pytest.approx(record["test"]["accuracy"])

    # the checkpoint alone tags new text: vocabularies travel with the weights
    task, model = load_tagger(tmp_path / "run" / "best.pt")
    tagged = tag_sentences(task, model, gold[:3])
    assert [t.xpos for s in tagged for t in s.tokens] == [t.xpos for s in predicted[:3] for t in s.tokens]
    main(["tag", str(tmp_path / "run" / "best.pt"), str(tiny_root / "ud-english-ewt" / "en_ewt-ud-test.conllu"),
          str(tmp_path / "tagged.conllu")])
    assert read_conllu(tmp_path / "tagged.conllu") == predicted


def test_tag_command_rejects_a_missing_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["tag", str(tmp_path / "none.pt"), "in.conllu", "out.conllu"])
    assert "checkpoint" in capsys.readouterr().err


def test_one_epoch_cli_run_writes_predictions(tiny_root, tmp_path):
    run_dir = tmp_path / "run"
    done = run_meprop(["train", *TINY, f"data_root={tiny_root}", "method=meprop", "topk=3",
                       "trainer.max_epochs=1", f"hydra.run.dir={run_dir}"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads((run_dir / "result.json").read_text())
    assert result["task"] == "pos" and result["best_epoch"] == 1 and result["k"] == 3
    assert 0.0 <= result["test"]["accuracy"] <= 1.0 and result["test_tokens"] > 0
    assert len(read_conllu(run_dir / PREDICTIONS_FILE)) == 15


def test_missing_treebank_is_one_clear_cli_error(tmp_path):
    done = run_meprop(["train", *TINY, f"data_root={tmp_path}", "trainer.max_epochs=1",
                       f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    assert done.returncode == 2
    assert "en_ewt-ud-train.conllu not found" in done.stderr and "meprop data fetch" in done.stderr


def test_mesimp_prunes_both_directions_and_the_pruned_tagger_tags(make_cfg, tiny_root, tmp_path):
    from meprop_cli import results
    cfg = make_cfg([*TINY, f"data_root={tiny_root}", "method=mesimp", "topk=2", "task.hidden=[12]",
                    "trainer.max_epochs=3", "task.batch_size=6", "optim.lr=0.02", "task.dropout=0",
                    "method.prune_rate=0.2", "method.cycle_epochs=3"])
    record = train(cfg, tmp_path / "run")
    assert record["status"] == "completed" and record[results.HIDDEN_INITIAL] == [12, 12]
    tested = record[results.HIDDEN_TESTED]
    assert len(tested) == 2 and sum(tested) < 24  # a size per direction; cells were removed
    # test scoring, `meprop tag` and the predictions all use the pruned model from best.pt
    task, model = load_tagger(tmp_path / "run" / "best.pt")
    assert model.hidden_sizes() == tested
    main(["tag", str(tmp_path / "run" / "best.pt"), str(tiny_root / "ud-english-ewt" / "en_ewt-ud-test.conllu"),
          str(tmp_path / "tagged.conllu")])
    assert read_conllu(tmp_path / "tagged.conllu") == read_conllu(tmp_path / "run" / PREDICTIONS_FILE)


def test_meact_on_the_bilstm_tagger_is_one_sentence(make_cfg, tiny_root, tmp_path):
    from meprop_cli.errors import ConfigError
    cfg = make_cfg([*TINY, f"data_root={tiny_root}", "method=meact", "trainer.max_epochs=1"])
    with pytest.raises(ConfigError, match="needs a feed-forward network of hidden layers, and the Tagger model of "
                                          "task=pos has none"):
        train(cfg, tmp_path / "run")
