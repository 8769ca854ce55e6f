"""The arc-standard transition system (Nivre 2004; Chen & Manning 2014) and its static oracle.

Words are numbered 1..n, 0 is the artificial ROOT, which starts on the stack. Transitions:

    SHIFT        move the first buffer word onto the stack
    LEFT-ARC(l)  s1 → s2 with label l, pop s2        (s2 must not be ROOT)
    RIGHT-ARC(l) s2 → s1 with label l, pop s1        (s2 = ROOT only once the buffer is empty)

The ROOT condition makes every terminal configuration a single-rooted tree: ROOT gets exactly one
dependent, the last word left on the stack. A parse ends when the buffer is empty and only ROOT is
on the stack; until then at least one transition is always legal.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

SHIFT, LEFT, RIGHT = 0, 1, 2
NO_HEAD = -1


@dataclass(frozen=True)
class TransitionSet:
    """Transition ids: 0 = SHIFT, 1..L = LEFT-ARC(label), L+1..2L = RIGHT-ARC(label).

    labels are arc-label ids as the model's label vocabulary numbers them (one entry, the
    placeholder, for unlabeled parsing).
    """

    labels: tuple[int, ...]

    def __len__(self) -> int:
        return 1 + 2 * len(self.labels)

    def encode(self, action: int, label: int | None = None) -> int:
        if action == SHIFT:
            return 0
        offset = self.labels.index(label)
        return 1 + offset if action == LEFT else 1 + len(self.labels) + offset

    def decode(self, transition: int) -> tuple[int, int | None]:
        if transition == 0:
            return SHIFT, None
        i = transition - 1
        n = len(self.labels)
        return (LEFT, self.labels[i]) if i < n else (RIGHT, self.labels[i - n])


class Configuration:
    """Stack, buffer and the arcs built so far for one sentence of n words."""

    __slots__ = ("n", "stack", "next", "heads", "labels", "lefts", "rights")

    def __init__(self, n: int) -> None:
        self.n = n
        self.stack = [0]
        self.next = 1  # the buffer is next..n
        self.heads = [NO_HEAD] * (n + 1)
        self.labels = [NO_HEAD] * (n + 1)  # label id of each word's arc
        self.lefts: list[list[int]] = [[] for _ in range(n + 1)]  # left dependents, leftmost first
        self.rights: list[list[int]] = [[] for _ in range(n + 1)]  # right dependents, rightmost last

    def buffer_empty(self) -> bool:
        return self.next > self.n

    def is_terminal(self) -> bool:
        return self.buffer_empty() and len(self.stack) == 1

    def legal(self) -> tuple[bool, bool, bool]:
        """Whether SHIFT, LEFT-ARC and RIGHT-ARC may be taken now."""
        depth = len(self.stack)
        shift = not self.buffer_empty()
        left = depth > 2  # s2 exists and is a word, not ROOT
        right = depth > 2 or (depth == 2 and not shift)
        return shift, left, right

    def apply(self, action: int, label: int) -> None:
        if action == SHIFT:
            self.stack.append(self.next)
            self.next += 1
            return
        s1 = self.stack.pop()
        s2 = self.stack.pop()
        if action == LEFT:  # s1 heads s2; s2 lies left of s1 and of s1's earlier left dependents
            self.heads[s2], self.labels[s2] = s1, label
            self.lefts[s1].insert(0, s2)
            self.stack.append(s1)
        else:  # s2 heads s1; s1 lies right of s2's earlier right dependents
            self.heads[s1], self.labels[s1] = s2, label
            self.rights[s2].append(s1)
            self.stack.append(s2)


def is_projective(heads: list[int]) -> bool:
    """heads[i] is the head of word i (heads[0] unused): no two arcs cross, ROOT's arcs included."""
    arcs = [(min(h, d), max(h, d)) for d, h in enumerate(heads) if d > 0]
    for i, (a, b) in enumerate(arcs):
        for c, d in arcs[i + 1:]:
            if a < c < b < d or c < a < d < b:
                return False
    return True


def tree_problem(heads: list[int]) -> tuple[int, str] | None:
    """Why heads is not a tree the arc-standard system builds, as (word, what to fix), or None if it is one.

    heads[d] is the head of word d (heads[0] unused, NO_HEAD where the file has `_`). A tree: every word
    has a head in 0..n other than itself, exactly one word hangs from ROOT, and every word's chain of
    heads reaches ROOT (no cycle). Linear in n.
    """
    n = len(heads) - 1
    for d in range(1, n + 1):
        h = heads[d]
        if h == NO_HEAD:
            return d, "HEAD is `_` (no tree); the parser needs a HEAD for every word, so give it a treebank with trees"
        if not 0 <= h <= n:
            return d, (f"HEAD {h} is outside 0..{n} (the sentence has {n} words); give the ID of the word's head, "
                       "or 0 for the root")
        if h == d:
            return d, f"word {d} is its own head; give the ID of another word, or 0 for the root"
    roots = [d for d in range(1, n + 1) if heads[d] == 0]
    if not roots:
        return 1, "no word of this sentence has HEAD 0; give its root word HEAD 0 (the parser builds one root)"
    if len(roots) > 1:
        return roots[1], (f"word {roots[1]} is a second root (HEAD 0, as word {roots[0]} is); the parser builds "
                          "one root per sentence, so attach it to a word of the tree")
    reaches_root = [False] * (n + 1)  # a word whose chain of heads is known to end at ROOT
    reaches_root[0] = True
    for d in range(1, n + 1):
        path, on_path, node = [], set(), d
        while not reaches_root[node]:
            if node in on_path:
                cycle = path[path.index(node):]
                return min(cycle), (f"the HEADs of words {', '.join(map(str, sorted(cycle)))} form a cycle that "
                                    "never reaches the root; fix the HEAD of one of them")
            path.append(node)
            on_path.add(node)
            node = heads[node]
        for w in path:
            reaches_root[w] = True
    return None


def is_single_rooted_tree(heads: list[int]) -> bool:
    """Every word has a head in 0..n, exactly one word hangs from ROOT, and there are no cycles."""
    return tree_problem(heads) is None


def oracle_steps(heads: list[int], labels: list[int]) -> Iterator[tuple[Configuration, tuple[int, int]]]:
    """The static arc-standard oracle: each configuration with the (action, label) that builds the gold tree.

    heads/labels are indexed by word (index 0 unused). Reduce as early as possible: LEFT-ARC when s2's
    head is s1; RIGHT-ARC when s1's head is s2 and s1 has all its dependents; else SHIFT. The
    configuration is yielded before the step is applied to it (read it before resuming). The tree must
    be projective and single-rooted (check with is_projective / is_single_rooted_tree first).
    """
    n = len(heads) - 1
    missing = [0] * (n + 1)  # dependents of each word not attached yet
    for d in range(1, n + 1):
        missing[heads[d]] += 1
    config = Configuration(n)
    while not config.is_terminal():
        can_shift, can_left, can_right = config.legal()
        s1 = config.stack[-1]
        s2 = config.stack[-2] if len(config.stack) > 1 else None
        if can_left and heads[s2] == s1:
            step = (LEFT, labels[s2])
        elif can_right and heads[s1] == s2 and missing[s1] == 0:
            step = (RIGHT, labels[s1])
        elif can_shift:
            step = (SHIFT, NO_HEAD)
        else:
            raise ValueError("the oracle is stuck: the tree is not projective or not single-rooted")
        yield config, step
        if step[0] != SHIFT:
            missing[s1 if step[0] == LEFT else s2] -= 1
        config.apply(*step)


def oracle(heads: list[int], labels: list[int]) -> list[tuple[int, int]]:
    """The oracle's (action, label) sequence for a gold tree."""
    return [step for _, step in oracle_steps(heads, labels)]
