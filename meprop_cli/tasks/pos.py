"""Part-of-speech tagging (the meProp paper's POS task) on UD English EWT with a BiLSTM tagger.

Input per word: a 50-dim word embedding and seven 20-dim feature embeddings (190 dims, see
pos_features); a BiLSTM (h per direction, meProp inside its gate products, see nn/lstm.py); a linear
output layer over both directions (method.make_linear(..., "output"): full gradient unless topk_output).
Tags: XPOS (Penn-style) or UPOS (task.tagset). Score: per-token accuracy, every token counted: a dev or
test token whose gold tag never occurs in training counts as wrong (the tagger cannot predict it), and
load() says how many there are in the log and in result.json. A word whose tag is `_` (not annotated) is
a DataError in any split: it would be learned or scored as a tag.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from meprop_cli.data.conllu import Sentence, read_split, write_conllu
from meprop_cli.data.paths import find_file
from meprop_cli.errors import DataError
from meprop_cli.methods import Method
from meprop_cli.nn.lstm import BiLSTM, Packing
from meprop_cli.nn.shrink import fit_to_sizes
from meprop_cli.ops import Sparsity
from meprop_cli.tasks.base import Task
from meprop_cli.tasks.pos_features import FEATURES, TagSet, Vocabulary, normalize, word_features
from meprop_cli.tasks.word_dropout import drop_probabilities, drop_words

SPLITS = ("train", "dev", "test")
PREDICTIONS_FILE = "test.predicted.conllu"

log = logging.getLogger("meprop")


@dataclass
class Encoded:
    """One sentence as ids: words (L,), features (L, 7), tags (L,) (-1 = a tag unseen in training)."""

    words: torch.Tensor
    features: torch.Tensor
    tags: torch.Tensor


@dataclass
class Batch:
    """Sentences packed time-major (nn.lstm.Packing); `sentences` are their indices in the split."""

    words: torch.Tensor
    features: torch.Tensor
    tags: torch.Tensor
    packing: Packing
    sentences: list[int]


class Tagger(nn.Module):
    def __init__(self, n_words: int, feature_sizes: list[int], n_tags: int, hidden: list[int],
                 sparsity: Sparsity | None, make_linear, word_dim: int, feature_dim: int,
                 dropout: float) -> None:
        super().__init__()
        self.words = nn.Embedding(n_words, word_dim)
        self.features = nn.ModuleList(nn.Embedding(n, feature_dim) for n in feature_sizes)
        self.lstm = BiLSTM(word_dim + feature_dim * len(feature_sizes), hidden, sparsity, dropout)
        self.output = make_linear(self.lstm.out_features, n_tags, "output")
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    # -- Shrinkable (nn/shrink.py): the BiLSTM's directions; the output layer loses the removed cells' columns
    def hidden_sizes(self) -> list[int]:
        return self.lstm.hidden_sizes()

    def hidden_records(self) -> list:
        return self.lstm.hidden_records()

    def keep_hidden(self, group: int, keep: torch.Tensor) -> None:
        columns = self.lstm.keep_hidden(group, keep)
        if columns is not None:
            self.output.keep_inputs(columns)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Tag scores (tokens, tags) in the batch's packed order."""
        x = torch.cat([self.words(batch.words), *(emb(batch.features[:, j]) for j, emb in enumerate(self.features))],
                      dim=1)
        h = self.lstm(self.dropout(x), batch.packing)
        return self.output(self.dropout(h))


class PosTask(Task):
    metrics = ("accuracy",)

    def __init__(self, cfg: Any, data_root: Path) -> None:
        super().__init__(cfg, data_root)
        self.sentences: dict[str, list[Sentence]] = {}
        self.encoded: dict[str, list[Encoded]] = {}
        self.eval_batches: dict[str, list[Batch]] = {}
        self.unseen_tags: dict[str, Counter] = {}  # dev/test gold tags absent from train -> their tokens

    # -- data -------------------------------------------------------------------------------
    def load(self) -> None:
        for split in SPLITS:
            path = find_file(self.data_root, self.cfg.dataset, [self.cfg[f"{split}_file"]])
            self.sentences[split] = read_split(path, f"task.{split}_file")
            self.check_tags(self.sentences[split], path)
        self.build_vocabularies(self.sentences["train"])
        for split in SPLITS:
            self.encoded[split] = [self.encode(s) for s in self.sentences[split]]
        for split in ("dev", "test"):
            self.unseen_tags[split] = Counter(self.tag_of(t) for s in self.sentences[split] for t in s.tokens
                                              if self.tags.id(self.tag_of(t)) < 0)
            if self.unseen_tags[split]:
                log.warning("pos: %s has %d token(s) whose gold tag never occurs in training (%s); they count as "
                            "wrong", split, sum(self.unseen_tags[split].values()),
                            ", ".join(f"{tag} ×{n}" for tag, n in self.unseen_tags[split].most_common()))
        self.eval_batches = {split: self.batches_in_length_order(split) for split in ("dev", "test")}

    def tag_of(self, token) -> str:
        return token.xpos if self.cfg.tagset == "xpos" else token.upos

    def check_tags(self, sentences: list[Sentence], path: Path) -> None:
        """Every word has a tag in the task's tag column: `_` would be learned or scored as one."""
        for sentence in sentences:
            for token, line in zip(sentence.tokens, sentence.lines):
                if self.tag_of(token) == "_":
                    raise DataError(f"{path}:{line}: the word has no {self.cfg.tagset.upper()} (`_`); tag every word, "
                                    f"or train on the other tag column with task.tagset="
                                    f"{'upos' if self.cfg.tagset == 'xpos' else 'xpos'}")

    def build_vocabularies(self, train: list[Sentence]) -> None:
        """Words, features and tags from the training sentences only."""
        words, tags = Counter(), Counter()
        features = [Counter() for _ in FEATURES]
        for sentence in train:
            forms = [t.form for t in sentence.tokens]
            words.update(normalize(f) for f in forms)
            tags.update(self.tag_of(t) for t in sentence.tokens)
            for row in word_features(forms):
                for counter, value in zip(features, row):
                    counter[value] += 1
        self.set_vocabularies(Vocabulary.from_counts(words),
                              [Vocabulary.from_counts(c, self.cfg.min_feature_count) for c in features],
                              TagSet(sorted(tags)))

    def set_vocabularies(self, words: Vocabulary, features: list[Vocabulary], tags: TagSet) -> None:
        self.words, self.features, self.tags = words, features, tags
        counts = torch.tensor([words.counts.get(w, 0) for w in words.items])
        self.word_drop_p = drop_probabilities(counts, self.cfg.word_dropout)

    def encode(self, sentence: Sentence) -> Encoded:
        forms = [t.form for t in sentence.tokens]
        return Encoded(
            torch.tensor([self.words.id(normalize(f)) for f in forms], dtype=torch.long),
            torch.tensor([[v.id(value) for v, value in zip(self.features, row)] for row in word_features(forms)],
                         dtype=torch.long).reshape(len(forms), len(FEATURES)),
            torch.tensor([self.tags.id(self.tag_of(t)) for t in sentence.tokens], dtype=torch.long))

    def make_batch(self, split: str, indices: list[int], generator: torch.Generator | None = None) -> Batch:
        """Pack the sentences longest first; with a generator, apply word dropout (training)."""
        indices = sorted(indices, key=lambda i: -len(self.encoded[split][i].tags))
        encoded = [self.encoded[split][i] for i in indices]
        lengths = torch.tensor([len(e.tags) for e in encoded])
        packing = Packing.from_lengths(lengths.tolist())
        starts = lengths.cumsum(0) - lengths
        index = starts[packing.rows] + packing.steps  # packed row -> row of the concatenated sentences
        words = torch.cat([e.words for e in encoded])[index]
        if generator is not None:
            words = drop_words(words, self.word_drop_p, 0, generator)
        return Batch(words, torch.cat([e.features for e in encoded])[index], torch.cat([e.tags for e in encoded])[index],
                     packing, indices)

    def batches_in_length_order(self, split: str) -> list[Batch]:
        order = sorted(range(len(self.encoded[split])), key=lambda i: -len(self.encoded[split][i].tags))
        size = self.cfg.eval_batch_size
        return [self.make_batch(split, order[i:i + size]) for i in range(0, len(order), size)]

    def train_batches(self, generator: torch.Generator) -> Iterator[Batch]:
        """Shuffled batches of sentences of similar length (sorted within pools of `bucket` batches)."""
        lengths = [len(e.tags) for e in self.encoded["train"]]
        order = torch.randperm(len(lengths), generator=generator).tolist()
        size = self.cfg.batch_size
        pool = size * self.cfg.bucket
        batches = []
        for start in range(0, len(order), pool):
            chunk = sorted(order[start:start + pool], key=lambda i: lengths[i])
            batches.extend(chunk[i:i + size] for i in range(0, len(chunk), size))
        for b in torch.randperm(len(batches), generator=generator).tolist():
            yield self.make_batch("train", batches[b], generator)

    # -- model, loss, score -------------------------------------------------------------------
    def build_model(self, method: Method) -> nn.Module:
        return Tagger(len(self.words), [len(v) for v in self.features], len(self.tags), method.hidden,
                      method.sparsity("hidden"), method.make_linear, self.cfg.word_dim, self.cfg.feature_dim,
                      self.cfg.dropout)

    def loss(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, int]:
        return F.cross_entropy(model(batch), batch.tags), len(batch.tags)

    def predict(self, model: nn.Module, split: str) -> list[list[int]]:
        """Predicted tag ids of every sentence of the split, in file order."""
        predicted: list[list[int]] = [[] for _ in self.encoded[split]]
        for batch in self.eval_batches[split]:
            tags = model(self.to_device(batch)).argmax(dim=1).cpu()
            by_sentence = torch.full((len(batch.sentences), int(batch.packing.steps.max()) + 1), -1)
            by_sentence[batch.packing.rows, batch.packing.steps] = tags
            for row, i in enumerate(batch.sentences):
                predicted[i] = by_sentence[row, :len(self.encoded[split][i].tags)].tolist()
        return predicted

    def evaluate(self, model: nn.Module, split: str) -> dict[str, float]:
        correct = tokens = 0
        for batch in map(self.to_device, self.eval_batches[split]):
            correct += int((model(batch).argmax(dim=1) == batch.tags).sum())
            tokens += len(batch.tags)
        return {"accuracy": correct / tokens}

    def write_outputs(self, model: nn.Module, run_dir: Path) -> None:
        """The test set as CoNLL-U with the predicted tags in the tag column (XPOS or UPOS)."""
        write_conllu(run_dir / PREDICTIONS_FILE, self.with_predicted_tags(model, "test"))

    def with_predicted_tags(self, model: nn.Module, split: str) -> list[Sentence]:
        column = self.cfg.tagset
        return [Sentence([t.with_(**{column: self.tags.items[i]}) for t, i in zip(s.tokens, ids)], s.comments)
                for s, ids in zip(self.sentences[split], self.predict(model, split))]

    # -- checkpoint and facts ----------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """The vocabularies: with the weights, enough to tag new text (see load_tagger)."""
        return {"tagset": self.cfg.tagset, "words": self.words.items, "word_counts": self.words.counts,
                "features": {name: v.items for name, v in zip(FEATURES, self.features)},
                "tags": self.tags.items}

    def set_state(self, state: dict[str, Any]) -> None:
        self.set_vocabularies(Vocabulary(state["words"][1:], state["word_counts"]),
                              [Vocabulary(state["features"][name][1:]) for name in FEATURES],
                              TagSet(state["tags"]))

    def train_size(self) -> int:
        return len(self.encoded["train"])

    def example_ids(self, batch: Batch) -> torch.Tensor:
        """A sentence is an example (its index in the training file)."""
        return torch.tensor(batch.sentences)

    def steps_per_epoch(self) -> int:
        n, size = len(self.encoded["train"]), self.cfg.batch_size
        pool = size * self.cfg.bucket
        return sum(-(-min(pool, n - start) // size) for start in range(0, n, pool))

    def describe(self) -> dict[str, Any]:
        facts: dict[str, Any] = {"tagset": self.cfg.tagset, "tags": len(self.tags), "words": len(self.words),
                                 "feature_vocabularies": {n: len(v) for n, v in zip(FEATURES, self.features)}}
        for split in SPLITS:
            facts[f"{split}_sentences"] = len(self.encoded[split])
            facts[f"{split}_tokens"] = sum(len(e.tags) for e in self.encoded[split])
        for split, unseen in self.unseen_tags.items():
            facts[f"{split}_unseen_tag_tokens"] = sum(unseen.values())  # scored, always wrong
        return facts


def load_tagger(checkpoint: str | Path) -> tuple[PosTask, Tagger]:
    """A trained tagger from a run's best.pt: its task (vocabularies) and model, in eval mode."""
    from omegaconf import OmegaConf

    from meprop_cli import results
    from meprop_cli.methods import build_method

    payload = results.read_checkpoint(checkpoint)
    cfg = OmegaConf.create(payload["config"])
    name = OmegaConf.select(cfg, "task.name")
    if name != "pos":
        raise DataError(f"{checkpoint} is a task={name} checkpoint; give the best.pt of a task=pos run")
    if "task_state" not in payload:
        raise DataError(f"{checkpoint} lacks the tagger's vocabularies (task_state); give the best.pt a task=pos run "
                        "wrote")
    try:
        task = PosTask(cfg.task, Path(cfg.data_root))
        task.set_state(payload["task_state"])
        model = task.build_model(build_method(cfg))
        fit_to_sizes(model, payload.get("sizes"))  # a meSimp tagger is smaller than its config says
        model.load_state_dict(payload["model"])
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:  # a damaged or foreign payload
        raise DataError(f"{checkpoint} is a task=pos checkpoint whose vocabularies or weights do not fit its "
                        f"config ({results.one_line(f'{type(e).__name__}: {e}', 150)}); give the best.pt a task=pos "
                        "run wrote") from None
    return task, model.eval()


@torch.no_grad()
def tag_sentences(task: PosTask, model: Tagger, sentences: list[Sentence]) -> list[Sentence]:
    """The sentences with the model's tags in the task's tag column (new text: gold tags unused)."""
    task.sentences["new"], task.encoded["new"] = sentences, [task.encode(s) for s in sentences]
    task.eval_batches["new"] = task.batches_in_length_order("new")
    return task.with_predicted_tags(model, "new")
