"""Dependency parsing (the meProp paper's parsing task): a Chen & Manning transition parser on UD EWT.

Every sentence of every split must be a single-rooted tree (checked where the files are read: a HEAD
out of range, `_`, a second root or a cycle is a DataError naming file and line). Training examples are
the oracle's (configuration features, transition) pairs of every projective training tree, computed
once per run (non-projective ones are skipped and counted); dev and test are parsed greedily in full,
non-projective trees included, and scored with UAS, LAS and UAS without punctuation.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from meprop_cli.data.conllu import Sentence, read_conllu, read_split, write_conllu
from meprop_cli.errors import ConfigError, DataError
from meprop_cli.methods import Method
from meprop_cli.results import read_config
from meprop_cli.tasks.base import LabeledBatch, Task
from meprop_cli.tasks.parse.decode import parse
from meprop_cli.tasks.parse.evaluate import attachment_scores
from meprop_cli.tasks.parse.features import N_POSITIONS, UNK_ID, Vocabularies, arc_label, features
from meprop_cli.tasks.parse.model import ParserModel
from meprop_cli.tasks.parse.transitions import TransitionSet, is_projective, oracle_steps, tree_problem
from meprop_cli.tasks.word_dropout import drop_probabilities, drop_words

log = logging.getLogger("meprop")

SPLITS = ("train", "dev", "test")
GOLD_TAGS = "gold"
PREDICTIONS = "pred-{split}.conllu"  # predicted trees in the run folder
TAGGED = "{split}.predicted.conllu"  # predicted tags in a POS run folder (pos_source)


def gold_heads(sentence: Sentence) -> list[int]:
    return [-1] + [t.head for t in sentence.tokens]


def check_trees(sentences: list[Sentence], path: Path, labeled: bool) -> None:
    """Every sentence is a tree the parser can build and be scored on; else a DataError at the word's line."""
    for sentence in sentences:
        problem = tree_problem(gold_heads(sentence))
        if problem is not None:
            word, fix = problem
            raise DataError(f"{path}:{sentence.lines[word - 1]}: {fix}")
        if labeled:
            for token, line in zip(sentence.tokens, sentence.lines):
                if token.deprel == "_":
                    raise DataError(f"{path}:{line}: DEPREL is `_`; give every word a dependency label, or "
                                    "parse unlabeled with task.labeled=false")


def oracle_examples(sentences: list[Sentence], vocabs: Vocabularies, transitions: TransitionSet,
                    labeled: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(features (N, 48) int32, transition ids (N,), trees skipped as non-projective); trees checked by check_trees."""
    feats: list[list[int]] = []
    targets: list[int] = []
    skipped = 0
    for sentence in sentences:
        heads = gold_heads(sentence)
        if not is_projective(heads):
            skipped += 1
            continue
        labels = [-1] + [vocabs.labels.id(arc_label(t.deprel, labeled)) for t in sentence.tokens]
        words, tags = vocabs.encode(sentence)
        for config, (action, label) in oracle_steps(heads, labels):
            feats.append(features(config, words, tags))
            targets.append(transitions.encode(action, label))
    return (torch.tensor(feats, dtype=torch.int32).reshape(-1, 48), torch.tensor(targets, dtype=torch.int64),
            skipped)


class ParseTask(Task):
    metrics = ("uas", "las", "uas_nopunct")  # uas selects the best dev epoch

    def conllu_path(self, split: str) -> Path:
        path = self.data_root / self.cfg.dataset / f"{self.cfg.file_prefix}-{split}.conllu"
        if not path.exists():
            raise DataError(f"{path} not found: set data_root=PATH (or MEPROP_DATA) to the folder holding "
                            f"{self.cfg.dataset}/, or download it with `meprop data fetch ewt --root PATH`")
        return path

    def tag_source(self, split: str) -> list[list[str]] | None:
        """XPOS tags to parse a split with: None for the treebank's gold tags, else a POS run's predictions.

        The parser always learns from gold tags. With pos_source = a POS run folder, test is parsed with
        its test.predicted.conllu (required) and dev with dev.predicted.conllu when the run wrote one.
        """
        source = self.cfg.pos_source
        if source == GOLD_TAGS or split == "train":
            return None
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"task.pos_source={source} must be `gold` or the folder of a POS run "
                              f"(holding {TAGGED.format(split='test')})")
        try:
            run = (read_config(folder) or {}).get("task", {})  # {} for a folder holding only prediction files
        except Exception as e:  # a torn or hand-edited config.yaml
            raise DataError(f"{folder}/config.yaml is unreadable ({e}); point task.pos_source at a finished POS run")
        if run.get("name", "pos") != "pos":
            raise ConfigError(f"task.pos_source={source} is a task={run['name']} run; point it at a task=pos run")
        if run.get("tagset", "xpos") != "xpos":  # its file would hold predicted UPOS beside the gold XPOS
            raise ConfigError(f"task.pos_source={source} predicted {run['tagset']} tags, but the parser reads XPOS; "
                              "point it at a POS run with task.tagset=xpos")
        path = folder / TAGGED.format(split=split)
        if not path.is_file():
            if split == "test":
                raise DataError(f"{path} not found: point task.pos_source at a finished POS run on this treebank")
            log.info("parse: %s not found, %s is parsed with gold tags", path, split)
            return None
        tagged = read_conllu(path)
        gold = self.gold[split]
        if len(tagged) != len(gold) or any([t.form for t in a.tokens] != [t.form for t in b.tokens]
                                           for a, b in zip(tagged, gold)):
            raise DataError(f"{path} does not hold the same sentences and words as the {split} treebank file; "
                            "point task.pos_source at the predictions of a POS run on this treebank")
        self.tag_files[split] = str(path)
        return [[t.xpos for t in s.tokens] for s in tagged]

    def load(self) -> None:
        cfg = self.cfg  # its values were checked at start (config.BOUNDS, the schema's enums)
        self.gold = {}
        for split in SPLITS:
            path = self.conllu_path(split)
            self.gold[split] = read_split(path, "data_root, task.dataset and task.file_prefix")
            check_trees(self.gold[split], path, cfg.labeled)
        self.vocabs = Vocabularies.build(self.gold["train"], cfg.min_word_count, cfg.labeled, cfg.normalize_words)
        counts = self.vocabs.words.counts
        self.word_drop_p = drop_probabilities(torch.tensor([counts.get(w, 0) for w in self.vocabs.words.items]),
                                              cfg.word_dropout)
        self.transitions = TransitionSet(tuple(range(1, len(self.vocabs.labels))))
        self.encoded, self.tag_files = {}, {"dev": GOLD_TAGS, "test": GOLD_TAGS}
        for split in ("dev", "test"):  # before the oracle, so a wrong pos_source fails at once
            tags = self.tag_source(split)
            self.encoded[split] = [self.vocabs.encode(s, tags[i] if tags else None)
                                   for i, s in enumerate(self.gold[split])]
        self.train_feats, self.train_targets, self.skipped = oracle_examples(
            self.gold["train"], self.vocabs, self.transitions, cfg.labeled)
        if not len(self.train_targets):
            raise DataError(f"{self.conllu_path('train')}: none of its {self.skipped} trees is projective, so the "
                            "oracle has no training example; train on a treebank with projective trees")
        log.info("parse: %d training trees, %d skipped (non-projective), %d transition "
                 "examples, %d transitions", len(self.gold["train"]) - self.skipped, self.skipped,
                 len(self.train_targets), len(self.transitions))

    def build_model(self, method: Method) -> nn.Module:
        cfg = self.cfg
        return ParserModel(len(self.vocabs.words), len(self.vocabs.tags), len(self.vocabs.labels),
                           len(self.transitions), method, cfg.embed_dim, cfg.activation, cfg.dropout,
                           cfg.embed_init)

    def train_size(self) -> int:
        return len(self.train_targets)

    def train_batches(self, generator: torch.Generator) -> Iterator[LabeledBatch]:
        order = torch.randperm(len(self.train_targets), generator=generator)
        for i in range(0, len(order), self.cfg.batch_size):
            idx = order[i:i + self.cfg.batch_size]
            feats = self.train_feats[idx]
            if self.cfg.word_dropout > 0:  # the first N_POSITIONS features are words
                feats[:, :N_POSITIONS] = drop_words(feats[:, :N_POSITIONS], self.word_drop_p, UNK_ID, generator)
            yield LabeledBatch(feats, self.train_targets[idx], idx)

    def loss(self, model: nn.Module, batch: LabeledBatch) -> tuple[torch.Tensor, int]:
        feats, targets = batch.inputs, batch.targets
        return F.cross_entropy(model(feats), targets), len(targets)

    def predict(self, model: nn.Module, split: str) -> list[Sentence]:
        """The split's sentences with HEAD and DEPREL from the parser (DEPS cleared: it would be gold)."""
        configs = parse(model, self.encoded[split], self.transitions, self.cfg.eval_batch_size, self.device)
        labels = self.vocabs.labels.items
        return [Sentence([t.with_(head=c.heads[i], deprel=labels[c.labels[i]], deps="_")
                          for i, t in enumerate(gold.tokens, start=1)], gold.comments)
                for gold, c in zip(self.gold[split], configs)]

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        return attachment_scores(self.gold[split], self.predict(model, split), self.cfg.labeled)

    def write_outputs(self, model: nn.Module, run_dir: Path) -> None:
        for split in ("dev", "test"):
            write_conllu(run_dir / PREDICTIONS.format(split=split), self.predict(model, split))

    def state(self) -> dict[str, Any]:
        return {"vocabularies": self.vocabs.state(), "labeled": self.cfg.labeled,
                "pos_source": self.cfg.pos_source}

    def describe(self) -> dict[str, Any]:
        return {
            "train_sentences": len(self.gold["train"]), "train_skipped_trees": self.skipped,
            "train_size": len(self.train_targets), "dev_words": sum(len(s) for s in self.gold["dev"]),
            "test_words": sum(len(s) for s in self.gold["test"]), "transitions": len(self.transitions),
            "vocab_words": len(self.vocabs.words), "vocab_tags": len(self.vocabs.tags),
            "tags_dev": self.tag_files["dev"], "tags_test": self.tag_files["test"],
        }

