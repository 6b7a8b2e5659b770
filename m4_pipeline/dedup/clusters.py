"""Union-find clustering of verified duplicate pairs, a deterministic keep policy, report rows.

Keep policy: in each cluster keep the member with the most pixels (the highest-resolution
copy), then the smallest key. It depends only on the members, never on the order pairs were
found in, so a distributed run and a single-process run keep the same samples.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


class UnionFind:
    """Disjoint sets over hashable ids, with path halving and union by size."""

    def __init__(self) -> None:
        self._parent: dict = {}
        self._size: dict = {}

    def find(self, x):
        parent = self._parent
        if x not in parent:
            parent[x], self._size[x] = x, 1
            return x
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a, b) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self._size[ra] < self._size[rb]:
            ra, rb = rb, ra
        self._parent[rb] = ra
        self._size[ra] += self._size[rb]

    def groups(self) -> list[list]:
        out: dict = defaultdict(list)
        for x in self._parent:
            out[self.find(x)].append(x)
        return list(out.values())


@dataclass
class Edge:
    """One verified duplicate pair and why: ``reason`` names the test that matched
    (exact_text_media, near_image, near_text, ...), ``detail`` its measure (a distance, a Jaccard)."""

    a: str
    b: str
    reason: str
    detail: Any = None  # JSON-ready


@dataclass
class Cluster:
    kept: str
    members: list[str]  # sorted, kept included
    reasons: list[str]  # sorted distinct reasons of its edges
    edges: list[Edge]

    @property
    def removed(self) -> list[str]:
        return [k for k in self.members if k != self.kept]


def keep_order(key: str, pixels: Mapping[str, int]) -> tuple[int, str]:
    """Sort key of the keep policy: more pixels first, then the smaller key."""
    return (-int(pixels.get(key, 0)), key)


def build_clusters(edges: Iterable[Edge], pixels: Mapping[str, int] | None = None) -> list[Cluster]:
    """Connected components of the edges, each with its kept member; sorted by kept key."""
    pixels = pixels or {}
    uf = UnionFind()
    by_root: dict = defaultdict(list)
    edges = list(edges)
    for e in edges:
        if e.a != e.b:
            uf.union(e.a, e.b)
    for e in edges:
        if e.a != e.b:
            by_root[uf.find(e.a)].append(e)
    clusters = []
    for group in uf.groups():
        members = sorted(group)
        kept = min(members, key=lambda k: keep_order(k, pixels))
        cluster_edges = sorted(by_root[uf.find(kept)], key=lambda e: (e.a, e.b, e.reason))
        reasons = sorted({e.reason for e in cluster_edges})
        clusters.append(Cluster(kept=kept, members=members, reasons=reasons, edges=cluster_edges))
    clusters.sort(key=lambda c: c.kept)
    return clusters


def duplicate_of(clusters: Iterable[Cluster]) -> dict[str, str]:
    """Each removed key mapped to the key kept in its place."""
    return {k: c.kept for c in clusters for k in c.removed}


def cluster_rows(clusters: Iterable[Cluster], *, kind: str) -> list[dict]:
    """One JSON-ready row per cluster: what was kept, what was removed, and every edge's reason."""
    return [
        {
            "kind": kind,
            "kept": c.kept,
            "members": c.members,
            "removed": c.removed,
            "reason": "+".join(c.reasons),
            "edges": [{"a": e.a, "b": e.b, "reason": e.reason, "detail": e.detail} for e in c.edges],
        }
        for c in clusters
    ]
