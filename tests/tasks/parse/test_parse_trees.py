"""Trees are checked once where the treebank is read, in every split: each problem is one sentence at its line."""
from __future__ import annotations

import re

import pytest

from meprop_cli.errors import DataError
from meprop_cli.tasks import build_task
from meprop_cli.tasks.parse.transitions import NO_HEAD, tree_problem

from test_parse_task import NONPROJECTIVE, TREES, tiny_overrides, write_treebank


@pytest.mark.parametrize("heads, word, message", [
    ([-1, 2, 0, 2], None, None),
    ([-1, 2, NO_HEAD, 2], 2, "HEAD is `_`"),
    ([-1, 2, 0, 4], 3, "HEAD 4 is outside 0..3"),
    ([-1, 1, 0], 1, "word 1 is its own head"),
    ([-1, 2, 3, 1], 1, "no word of this sentence has HEAD 0"),
    ([-1, 0, 1, 0], 3, "word 3 is a second root \\(HEAD 0, as word 1 is\\)"),
    ([-1, 0, 4, 2, 3, 1], 2, "the HEADs of words 2, 3, 4 form a cycle"),
])
def test_tree_problem_names_the_word_and_the_fix(heads, word, message):
    problem = tree_problem(heads)
    if word is None:
        assert problem is None
    else:
        assert problem[0] == word and re.search(message, problem[1])


def with_head(tree, word, head):
    """The tree with word (1-based) given another HEAD."""
    return [(f, u, x, head if i == word else h, d) for i, (f, u, x, h, d) in enumerate(tree, start=1)]


def load(root, make_cfg, *extra):
    cfg = make_cfg(tiny_overrides(root, *extra))
    task = build_task(cfg.task, root)
    task.load()
    return task


# write_treebank: line 1 is `# sent_id = s0`, TREES[0]'s words are lines 2-5, TREES[1] starts at line 8
@pytest.mark.parametrize("split, trees, line, message", [
    ("dev", [TREES[0], with_head(TREES[1], 2, 7)], 9, "HEAD 7 is outside 0..3"),
    ("test", [with_head(with_head(TREES[0], 1, 3), 3, 1)], 2, "the HEADs of words 1, 3 form a cycle"),
    ("train", [TREES[0], with_head(TREES[1], 2, "_")], 9, "HEAD is `_` \\(no tree\\); the parser needs a HEAD"),
    ("dev", [with_head(TREES[0], 4, 0)], 5, "word 4 is a second root"),
    ("train", [with_head(TREES[0], 2, 4)], 2, "no word of this sentence has HEAD 0"),
])
def test_a_bad_tree_in_any_split_is_an_error_at_its_line(tmp_path, make_cfg, split, trees, line, message):
    root = tmp_path / "data"
    for name in ("train", "dev", "test"):
        write_treebank(root / "ud-english-ewt" / f"en_ewt-ud-{name}.conllu", trees if name == split else TREES)
    path = root / "ud-english-ewt" / f"en_ewt-ud-{split}.conllu"
    with pytest.raises(DataError, match=message) as error:
        load(root, make_cfg)
    assert str(error.value).startswith(f"{path}:{line}: ")


def test_a_missing_deprel_is_an_error_only_for_labeled_parsing(tmp_path, make_cfg):
    root = tmp_path / "data"
    no_label = [[(f, u, x, h, "_" if i == 2 else d) for i, (f, u, x, h, d) in enumerate(tree, start=1)]
                for tree in TREES]
    for name in ("train", "dev", "test"):
        write_treebank(root / "ud-english-ewt" / f"en_ewt-ud-{name}.conllu", no_label)
    with pytest.raises(DataError, match=r"train\.conllu:3: DEPREL is `_`; .* task\.labeled=false"):
        load(root, make_cfg)
    assert len(load(root, make_cfg, "task.labeled=false").train_targets) == sum(2 * len(t) for t in TREES)


def test_an_empty_split_and_a_train_set_without_projective_trees_are_errors(tmp_path, make_cfg):
    folder = tmp_path / "data" / "ud-english-ewt"
    for name in ("train", "dev", "test"):
        write_treebank(folder / f"en_ewt-ud-{name}.conllu", TREES)
    (folder / "en_ewt-ud-test.conllu").write_text("# nothing here\n")
    with pytest.raises(DataError, match=r"test\.conllu holds no sentence; point data_root, task\.dataset and "
                                        r"task\.file_prefix at a CoNLL-U file with data"):
        load(tmp_path / "data", make_cfg)
    write_treebank(folder / "en_ewt-ud-test.conllu", TREES)
    write_treebank(folder / "en_ewt-ud-train.conllu", [NONPROJECTIVE, NONPROJECTIVE])
    with pytest.raises(DataError, match=r"train\.conllu: none of its 2 trees is projective"):
        load(tmp_path / "data", make_cfg)


def test_the_cli_prints_a_bad_dev_tree_as_one_line_and_exits_2(tmp_path):
    from conftest import run_meprop

    root = tmp_path / "data"
    for name in ("train", "dev", "test"):
        trees = [TREES[0], with_head(with_head(TREES[1], 1, 2), 2, 1)] if name == "dev" else TREES
        write_treebank(root / "ud-english-ewt" / f"en_ewt-ud-{name}.conllu", trees)
    done = run_meprop(["train", *tiny_overrides(root), f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path)
    dev = root / "ud-english-ewt" / "en_ewt-ud-dev.conllu"
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (f"meprop: error: {dev}:8: the HEADs of words 1, 2 form a cycle that never "
                                   "reaches the root; fix the HEAD of one of them")
