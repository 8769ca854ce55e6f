"""The parse task end to end through the shared trainer, on a tiny treebank the test writes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from meprop_cli.data.conllu import read_conllu
from meprop_cli.errors import ConfigError, DataError
from meprop_cli.tasks.parse.task import gold_heads
from meprop_cli.tasks.parse.transitions import is_projective, is_single_rooted_tree, oracle
from meprop_cli.train import train

# (form, UPOS, XPOS, head, DEPREL) per word
TREES = [
    [("She", "PRON", "PRP", 2, "nsubj"), ("saw", "VERB", "VBD", 0, "root"), ("him", "PRON", "PRP", 2, "obj"),
     (".", "PUNCT", ".", 2, "punct")],
    [("The", "DET", "DT", 2, "det"), ("dog", "NOUN", "NN", 3, "nsubj"), ("barked", "VERB", "VBD", 0, "root")],
    [("I", "PRON", "PRP", 2, "nsubj"), ("like", "VERB", "VBP", 0, "root"), ("green", "ADJ", "JJ", 4, "amod"),
     ("tea", "NOUN", "NN", 2, "obj"), ("today", "NOUN", "NN", 2, "obl:tmod")],
    [("Cats", "NOUN", "NNS", 2, "nsubj"), ("sleep", "VERB", "VBP", 0, "root"), ("a", "DET", "DT", 4, "det"),
     ("lot", "NOUN", "NN", 2, "obl:npmod"), ("!", "PUNCT", ".", 2, "punct")],
]
NONPROJECTIVE = [("A", "DET", "DT", 3, "det"), ("b", "NOUN", "NN", 4, "obj"), ("c", "VERB", "VB", 0, "root"),
                 ("d", "ADV", "RB", 3, "advmod")]  # arcs 3→1 and 4→2 cross


def write_treebank(path: Path, trees) -> None:
    lines = []
    for n, tree in enumerate(trees):
        lines.append(f"# sent_id = s{n}")
        for i, (form, upos, xpos, head, deprel) in enumerate(tree, start=1):
            lines.append("\t".join([str(i), form, form.lower(), upos, xpos, "_", str(head), deprel, "_", "_"]))
        lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def tiny_treebank(tmp_path) -> Path:
    root = tmp_path / "data"
    folder = root / "ud-english-ewt"
    write_treebank(folder / "en_ewt-ud-train.conllu", [*TREES, NONPROJECTIVE])
    write_treebank(folder / "en_ewt-ud-dev.conllu", [*TREES, NONPROJECTIVE])  # every dev tree is scored
    write_treebank(folder / "en_ewt-ud-test.conllu", TREES)
    return root


def tiny_overrides(root: Path, *extra: str) -> list[str]:
    # embeddings in ±0.1: at this learning rate ±1 saturates the tanh units of the tiny model at once;
    # no dropout: the test checks that the tiny model can fit the trees it saw
    return ["task=parse", f"data_root={root}", "task.hidden=[64,64]", "task.batch_size=8", "topk=8", "task.embed_init=0.1",
            "task.dropout=0",
            "trainer.max_epochs=15", "trainer.threads=1", "trainer.progress=none", "optim.lr=0.02", *extra]


def test_a_run_fits_the_tiny_treebank_and_writes_predicted_trees(tiny_treebank, make_cfg, tmp_path):
    run_dir = tmp_path / "run"
    record = train(make_cfg(tiny_overrides(tiny_treebank, "trainer.checkpoint=false")), run_dir)
    assert record["status"] == "completed"
    assert record["train_skipped_trees"] == 1  # the non-projective tree is not learned from
    assert record["train_size"] == sum(2 * len(t) for t in TREES)  # arc-standard: 2n transitions
    assert record["transitions"] == 1 + 2 * 8  # SHIFT + LEFT/RIGHT for 8 universal labels
    # it fits the trees it saw; the best epoch is chosen by dev UAS, often before every label is learned
    assert record["test"]["uas"] == 1.0 and record["test"]["las"] > 0.5
    saved = json.loads((run_dir / "result.json").read_text())
    assert list(saved["dev"]) == ["uas", "las", "uas_nopunct"]
    for split, trees in (("dev", [*TREES, NONPROJECTIVE]), ("test", TREES)):
        predicted = read_conllu(run_dir / f"pred-{split}.conllu")
        assert [[t.form for t in s.tokens] for s in predicted] == [[w[0] for w in t] for t in trees]
        assert all(is_single_rooted_tree(gold_heads(s)) for s in predicted)  # the non-projective one too
        assert all(t.deps == "_" for s in predicted for t in s.tokens)


@pytest.mark.parametrize("method", ["meprop", "random", "small", "meprop_unified", "mesimp"])
def test_every_method_trains_the_parser(tiny_treebank, make_cfg, tmp_path, method):
    record = train(make_cfg(tiny_overrides(tiny_treebank, f"method={method}", "trainer.max_epochs=2",
                                                  "trainer.checkpoint=false")),
                   tmp_path / method)
    assert record["status"] == "completed"
    if method == "small":
        assert record["hidden"] == [8, 8] and record["k"] is None  # h = k, trained normally
    elif method == "mesimp":
        from meprop_cli.methods.mesimp import check_steps
        per_epoch = len(check_steps(-(-record["train_size"] // 8), 8))  # batches of 8, 8 checks asked
        assert record["hidden_initial"] == [64, 64] and record["prune_check_count"] == 2 * per_epoch
        assert len(record["hidden_tested"]) == 2
    else:
        assert record["k"] == 8 and record["k_output"] == 8  # the paper's parsing setting: same k on the output


def test_word_dropout_turns_only_word_features_into_unk(tiny_treebank, make_cfg):
    from meprop_cli.tasks import build_task
    from meprop_cli.tasks.parse.features import N_POSITIONS, NULL_ID, ROOT_ID, UNK_ID

    cfg = make_cfg(tiny_overrides(tiny_treebank, "task.word_dropout=1000", "task.min_word_count=1"))
    task = build_task(cfg.task, tiny_treebank)
    task.load()
    feats = torch.cat([b.inputs for b in task.train_batches(torch.Generator().manual_seed(0))])
    words, original = feats[:, :N_POSITIONS], task.train_feats[:, :N_POSITIONS]  # batches are shuffled: count
    real = original > ROOT_ID  # not NULL, UNK or ROOT
    assert int((words > ROOT_ID).sum()) <= 0.01 * int(real.sum())  # α = 1000: nearly every word is dropped
    assert int((words == UNK_ID).sum()) >= 0.99 * int(real.sum())
    for special in (NULL_ID, ROOT_ID):  # never dropped
        assert int((words == special).sum()) == int((original == special).sum())
    assert feats[:, N_POSITIONS:].sort(0).values.equal(task.train_feats[:, N_POSITIONS:].sort(0).values)  # tags, labels


def test_a_negative_word_dropout_is_a_config_error(tiny_treebank, make_cfg, tmp_path):
    with pytest.raises(ConfigError, match="word_dropout"):
        train(make_cfg(tiny_overrides(tiny_treebank, "task.word_dropout=-1")), tmp_path / "run")


def test_unlabeled_parsing_has_three_transitions_and_cube_activation_runs(tiny_treebank, make_cfg, tmp_path):
    record = train(make_cfg(tiny_overrides(tiny_treebank, "task.labeled=false", "task.activation=cube",
                                           "task.min_word_count=1", "trainer.max_epochs=2")), tmp_path / "run")
    assert record["transitions"] == 3
    assert json.loads((tmp_path / "run" / "result.json").read_text())["test"]["las"] is None  # NaN → null
    state = torch.load(tmp_path / "run" / "best.pt", weights_only=False)["task_state"]
    assert "dog" in state["vocabularies"]["words"] and state["labeled"] is False  # the checkpoint can parse
    assert all(t.deprel == "_" for s in read_conllu(tmp_path / "run" / "pred-test.conllu") for t in s.tokens)


def test_dev_and_test_are_parsed_with_the_tags_of_a_pos_run(tiny_treebank, make_cfg, tmp_path):
    pos_run = tmp_path / "pos_run"
    wrong_tags = [[(f, u, "XX", h, d) for f, u, _, h, d in tree] for tree in TREES]
    write_treebank(pos_run / "test.predicted.conllu", wrong_tags)
    record = train(make_cfg(tiny_overrides(tiny_treebank, f"task.pos_source={pos_run}", "trainer.max_epochs=1",
                                           "trainer.checkpoint=false")), tmp_path / "run")
    assert record["tags_test"] == str(pos_run / "test.predicted.conllu") and record["tags_dev"] == "gold"


def test_predicted_tags_must_match_the_treebank(tiny_treebank, make_cfg, tmp_path):
    pos_run = tmp_path / "pos_run"
    write_treebank(pos_run / "test.predicted.conllu", TREES[:2])
    with pytest.raises(DataError, match="same sentences"):
        train(make_cfg(tiny_overrides(tiny_treebank, f"task.pos_source={pos_run}")), tmp_path / "run")
    with pytest.raises(ConfigError, match="POS run"):
        train(make_cfg(tiny_overrides(tiny_treebank, f"task.pos_source={tmp_path}/nowhere")), tmp_path / "r2")


@pytest.mark.parametrize("run_config, message", [
    ("task:\n  name: pos\n  tagset: upos\n", "predicted upos tags, but the parser reads XPOS; point it at a POS run "
                                             "with task.tagset=xpos"),
    ("task:\n  name: parse\n", "is a task=parse run; point it at a task=pos run"),
    ("task: [unclosed\n", "config.yaml is unreadable"),
])
def test_a_pos_source_run_must_have_predicted_xpos(tiny_treebank, make_cfg, tmp_path, run_config, message):
    pos_run = tmp_path / "pos_run"
    write_treebank(pos_run / "test.predicted.conllu", TREES)  # the right words: only its config tells UPOS apart
    (pos_run / "config.yaml").write_text(run_config)
    with pytest.raises((ConfigError, DataError), match=message):
        train(make_cfg(tiny_overrides(tiny_treebank, f"task.pos_source={pos_run}")), tmp_path / "run")


def test_missing_treebank_says_how_to_get_it(tmp_path, make_cfg):
    with pytest.raises(DataError, match="meprop data fetch ewt"):
        train(make_cfg(tiny_overrides(tmp_path)), tmp_path / "run")


def test_real_ewt_oracle_rebuilds_every_projective_dev_tree(real_data):
    sentences = read_conllu(real_data / "ud-english-ewt" / "en_ewt-ud-dev.conllu")
    nonprojective = 0
    for s in sentences:
        heads = gold_heads(s)
        assert is_single_rooted_tree(heads)
        if not is_projective(heads):
            nonprojective += 1
            continue
        labels = [-1] + list(range(1, len(s) + 1))
        from meprop_cli.tasks.parse.transitions import Configuration
        config = Configuration(len(s))
        for step in oracle(heads, labels):
            config.apply(*step)
        assert config.heads == [-1] + heads[1:]
    assert 0 < nonprojective < len(sentences) // 20  # EWT has a few non-projective trees



def test_meact_parses_with_each_transition_computing_its_active_neurons(tiny_treebank, make_cfg, tmp_path):
    from meprop_cli import results
    record = train(make_cfg(tiny_overrides(tiny_treebank, "method=meact", "method.start_epoch=3", "method.threshold=0.01",
                                           "trainer.max_epochs=5", "method.memory_dtype=float16")), tmp_path / "run")
    assert record["status"] == "completed" and record[results.MEACT_MEMORY]["examples"] == record["train_size"]
    assert record[results.MEACT_MEMORY]["bytes"] == record["train_size"] * 128 * (4 + 2)  # float32 sums, float16 cache
    fractions = [line[results.ACTIVE_FRACTION] for line in results.read_metrics(tmp_path / "run")]
    assert fractions[:2] == [[1.0, 1.0]] * 2 and all(0 < f < 1 for epoch in fractions[2:] for f in epoch)
    assert record["test"]["uas"] > 0
