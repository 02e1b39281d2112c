"""Key/value caches of token prefixes, kept between requests.

An entry is the cache of one exact token sequence under one gate (the LoRA acts on k and
v, so the same tokens under another blend have other keys and values). Entries form a
tree: an entry stores only the positions after its parent's, so an NPC's system prompt is
stored once however many conversations continue it. A lookup finds the longest common
prefix with any entry of the same gate; since a position's cache depends only on the
tokens up to it, a prefix of an entry is as good as a whole one. When the budget is
exceeded, the least recently used leaves go first.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass(eq=False)
class _Node:
    key: Hashable
    tokens: np.ndarray  # the whole prefix this entry stands for
    start: int  # kv holds positions start..len(tokens)-1
    kv: torch.Tensor  # tokens first: (len(tokens) - start, ...)
    parent: _Node | None
    children: int = 0
    used: int = 0
    chain: list[_Node] = field(default_factory=list)  # root .. self

    @property
    def end(self) -> int:
        return len(self.tokens)


def _common(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if diff.size else n


class PrefixCache:
    def __init__(self, budget_bytes: int):
        self.budget = budget_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._nodes: dict[Hashable, list[_Node]] = {}
        self._clock = 0

    def _best(self, key: Hashable, tokens: np.ndarray) -> tuple[_Node | None, int]:
        best, length = None, 0
        for node in self._nodes.get(key, ()):
            n = _common(node.tokens, tokens)
            if n > length or (n == length and best is not None and node.end < best.end):
                best, length = node, n
        return best, length

    def _touch(self, node: _Node) -> None:
        self._clock += 1
        for n in node.chain:
            n.used = self._clock

    def lookup(
        self, key: Hashable, tokens: list[int], limit: int
    ) -> list[tuple[int, torch.Tensor]]:
        """Cached (start, kv) pieces covering the longest cached prefix, at most `limit`
        positions long; empty on a miss."""
        best, length = self._best(key, np.asarray(tokens, dtype=np.int64))
        length = min(length, limit)
        if best is None or length <= 0:
            self.misses += 1
            return []
        self.hits += 1
        self._touch(best)
        pieces = []
        for node in best.chain:
            if node.start >= length:
                break
            pieces.append((node.start, node.kv[: min(node.end, length) - node.start]))
        return pieces

    def insert(
        self, key: Hashable, tokens: list[int], read: Callable[[int, int], torch.Tensor]
    ) -> None:
        """Remember the cache of `tokens`; read(start, end) copies positions out of the
        sequence's live cache, and is called for the positions not cached already."""
        arr = np.asarray(tokens, dtype=np.int64)
        best, length = self._best(key, arr)
        if best is not None and length == len(arr):
            self._touch(best)
            return
        parent = None
        if best is not None:
            for node in best.chain:
                if node.end <= length:
                    parent = node
        start = parent.end if parent is not None else 0
        kv = read(start, len(arr))
        if kv.nbytes > self.budget:
            return
        node = _Node(key, arr, start, kv, parent)
        node.chain = (parent.chain if parent is not None else []) + [node]
        if parent is not None:
            parent.children += 1
        self._nodes.setdefault(key, []).append(node)
        self.bytes += kv.nbytes
        self._touch(node)
        self._evict(keep=node)

    def _evict(self, keep: _Node) -> None:
        """Least recently used leaves first, `keep` (just inserted) last: when it and its
        parents alone are over the budget, it goes, and then its parents."""
        while self.bytes > self.budget:
            leaves = [n for nodes in self._nodes.values() for n in nodes if n.children == 0]
            if not leaves:
                return
            others = [n for n in leaves if n is not keep]
            self._remove(min(others or leaves, key=lambda n: n.used))

    def _remove(self, node: _Node) -> None:
        nodes = self._nodes[node.key]
        nodes.remove(node)
        if not nodes:
            del self._nodes[node.key]
        self.bytes -= node.kv.nbytes
        if node.parent is not None:
            node.parent.children -= 1
        node.chain = []  # it held the node itself: free the tensor now, not at a full gc

    def audit(self) -> list[str]:
        """What is wrong with the bookkeeping (empty when sound): bytes that match no
        entry, an entry whose parent is gone, a wrong child count, bytes over budget.
        Read-only; for tests and debugging."""
        nodes = [n for group in self._nodes.values() for n in group]
        held = {id(n) for n in nodes}
        problems = []
        total = sum(n.kv.nbytes for n in nodes)
        if total != self.bytes:
            problems.append(f"bytes {self.bytes}, entries hold {total}")
        children: dict[int, int] = {}
        for n in nodes:
            if n.parent is not None:
                children[id(n.parent)] = children.get(id(n.parent), 0) + 1
                if id(n.parent) not in held:
                    problems.append(f"an entry of {n.end} tokens outlived its parent")
            if n.chain[-1] is not n or n.kv.shape[0] != n.end - n.start:
                problems.append(f"an entry of {n.end} tokens has a broken chain or size")
        for n in nodes:
            if n.children != children.get(id(n), 0):
                problems.append(
                    f"an entry counts {n.children} children, has {children.get(id(n), 0)}"
                )
        if self.bytes > self.budget:
            problems.append(f"{self.bytes} bytes, over the budget of {self.budget}")
        return problems

    def drop(self, stale: Callable[[Hashable], bool]) -> None:
        """Forget every entry whose key `stale` rejects (a block changed or went away)."""
        for key in [k for k in self._nodes if stale(k)]:
            for node in self._nodes.pop(key):
                self.bytes -= node.kv.nbytes
                node.chain = []
