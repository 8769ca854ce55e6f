"""Attachment scores: UAS and LAS over all words (CoNLL 2018) and UAS without punctuation (the PTB habit)."""
from __future__ import annotations

from meprop_cli.data.conllu import Sentence
from meprop_cli.tasks.parse.features import arc_label

PUNCT = "PUNCT"  # UPOS of the words the Penn Treebank convention leaves out


def attachment_scores(gold: list[Sentence], predicted: list[Sentence], labeled: bool = True) -> dict[str, float]:
    """{"uas", "las", "uas_nopunct"} as fractions; LAS compares universal labels, NaN when unlabeled."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(predicted)} predicted sentences for {len(gold)} gold ones")
    words = heads = both = scored = heads_scored = 0
    for g_sent, p_sent in zip(gold, predicted):
        if len(g_sent) != len(p_sent):
            raise ValueError("a predicted sentence has a different number of words than its gold one")
        for g, p in zip(g_sent.tokens, p_sent.tokens):
            right_head = g.head == p.head
            words += 1
            heads += right_head
            both += right_head and arc_label(g.deprel, True) == arc_label(p.deprel, True)
            if g.upos != PUNCT:
                scored += 1
                heads_scored += right_head
    return {"uas": heads / max(words, 1), "las": both / max(words, 1) if labeled else float("nan"),
            "uas_nopunct": heads_scored / max(scored, 1)}
