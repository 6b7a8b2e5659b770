"""Sub-quadratic search for 64-bit hashes within Hamming distance ``t``: banded pigeonhole LSH.

Split the 64 bits into ``m >= t + 1`` disjoint blocks. Two hashes that differ in at most ``t``
bits differ in at most ``t`` blocks, so they agree exactly on at least ``m - t`` blocks
(Manku, Jain & Das Sarma, "Detecting near-duplicates for web crawling", WWW 2007). Every
``(m - t)``-subset of blocks is a *band*; a hash's *band key* is (band index, the hash's bits
under that band's mask). Any pair within ``t`` shares at least one band key, so grouping by
band key and checking the true distance inside each group finds **every** pair (exact recall),
without comparing all pairs. ``m = t + 1`` is the plain pigeonhole (``t + 1`` bands of one
block); larger ``m`` gives more bands with wider keys: more records per item, far fewer
random collisions. :meth:`BandPlan.for_items` picks ``m`` for an expected item count.

The pieces are pure functions so that a distributed executor can shuffle on band keys:

- :func:`band_records` maps one (item id, hash) to its ``(band_key, item)`` records;
- :func:`pairs_in_band` takes all items of ONE band key and returns the verified pairs. A pair
  is returned only by the first band the two hashes share (checkable from the two hashes alone),
  so across all band keys each pair comes out exactly once;
- :func:`near_pairs` is the single-process driver: the same bands, vectorized with numpy.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from .phash import popcount64

BITS = 64
Item = tuple[Hashable, int]  # (item id, 64-bit hash)
Pair = tuple[Hashable, Hashable, int]  # (id a, id b, Hamming distance), a < b


@dataclass(frozen=True, kw_only=True)
class BandPlan:
    """``blocks`` disjoint bit blocks (bit i goes to block i mod blocks, so each block mixes
    low and high DCT frequencies), and one band per ``(blocks - threshold)``-subset of them."""

    threshold: int
    blocks: int
    masks: tuple[int, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.threshold < BITS:
            raise ValueError(f"threshold must be in [0, {BITS}), got {self.threshold}")
        if not self.threshold + 1 <= self.blocks <= BITS:
            raise ValueError(f"blocks must be in [threshold + 1, {BITS}], got {self.blocks}")
        block_masks = [sum(1 << bit for bit in range(b, BITS, self.blocks)) for b in range(self.blocks)]
        keep = self.blocks - self.threshold
        masks = tuple(sum(block_masks[i] for i in combo) for combo in combinations(range(self.blocks), keep))
        object.__setattr__(self, "masks", masks)

    @property
    def num_bands(self) -> int:
        return len(self.masks)

    @classmethod
    def for_items(cls, threshold: int, num_items: int, *, max_bands: int = 512) -> BandPlan:
        """The block count with the lowest estimated cost for ``num_items`` uniform hashes:
        per band, sort every item (records) and verify the random collisions (pairs)."""
        best, best_cost = None, math.inf
        for blocks in range(threshold + 1, BITS + 1):
            bands = math.comb(blocks, threshold)
            if bands > max_bands and best is not None:
                break
            key_bits = BITS * (blocks - threshold) / blocks
            pairs = num_items * num_items / 2.0 / 2.0**key_bits
            cost = bands * (num_items * 8.0 + pairs * 1.0)  # a sorted record ~ 8 verified pairs
            if cost < best_cost:
                best, best_cost = blocks, cost
        return cls(threshold=threshold, blocks=best)


# --- the distributable pieces -------------------------------------------------------------------


def band_records(item_id: Hashable, hash_value: int, plan: BandPlan) -> list[tuple[tuple[int, int], Item]]:
    """(band key, item) for every band: shuffle on the band key, then call :func:`pairs_in_band`."""
    h = int(hash_value)
    return [((band, h & mask), (item_id, h)) for band, mask in enumerate(plan.masks)]


def first_shared_band(a: int, b: int, plan: BandPlan) -> int | None:
    x = int(a) ^ int(b)
    for band, mask in enumerate(plan.masks):
        if x & mask == 0:
            return band
    return None


def pairs_in_band(band: int, items: Sequence[Item], plan: BandPlan) -> list[Pair]:
    """Pairs of ONE band key's items within ``plan.threshold``, each reported by its first shared band only."""
    if len(items) < 2:
        return []
    ids = [i for i, _ in items]
    hashes = np.fromiter((int(h) for _, h in items), np.uint64, len(items))
    out: list[Pair] = []
    for i in range(len(items) - 1):
        dist = popcount64(hashes[i] ^ hashes[i + 1 :])
        for j in np.flatnonzero(dist <= plan.threshold) + i + 1:
            if first_shared_band(hashes[i], hashes[j], plan) == band:
                out.append(_ordered(ids[i], ids[j], int(dist[j - i - 1])))
    return out


def _ordered(a, b, d: int) -> Pair:
    return (a, b, d) if a <= b else (b, a, d)


# --- the single-process driver ------------------------------------------------------------------


def _run_pairs(sorted_keys: np.ndarray) -> Iterable[tuple[np.ndarray, int]]:
    """(positions i, shift d): the pairs (i, i + d) inside runs of equal sorted keys, one shift at a time."""
    n = len(sorted_keys)
    if n < 2:
        return
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    ends = np.r_[starts[1:], n]
    run_end = np.repeat(ends, ends - starts)
    active = np.flatnonzero(run_end - np.arange(n) > 1)
    shift = 1
    while len(active):
        yield active, shift
        shift += 1
        active = active[active + shift < run_end[active]]


def near_pairs(hashes: np.ndarray, threshold: int, *, plan: BandPlan | None = None,
               max_run: int | None = None) -> np.ndarray:  # fmt: skip
    """Index pairs ``(i, j, distance)``, i < j, of all hashes within ``threshold``; shape (P, 3).

    Exact: the same pairs as :func:`brute_force_pairs`, in O(bands x n log n + collisions).

    With ``max_run``, when more than ``max_run`` items share one identical hash (one blank frame
    in thousands of videos), the search runs over the distinct values and returns a *spanning*
    set instead: identical hashes are paired among themselves (every pair for a group of at most
    ``max_run``, else a star from its first item) and two near values through their first items.
    Items the exact search connects stay connected (the same clusters), at a cost linear in the
    largest group.
    """
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    if max_run is not None and len(hashes) > max_run and np.unique(hashes, return_counts=True)[1].max() > max_run:
        return _near_pairs_collapsed(hashes, threshold, plan, max_run)
    plan = plan or BandPlan.for_items(threshold, len(hashes))
    if plan.threshold != threshold:
        raise ValueError(f"plan is for threshold {plan.threshold}, not {threshold}")
    found = []
    masks = [np.uint64(m) for m in plan.masks]
    for band, mask in enumerate(masks):
        keys = hashes & mask
        order = np.argsort(keys)
        sorted_hashes = hashes[order]
        for pos, shift in _run_pairs(keys[order]):
            x = sorted_hashes[pos] ^ sorted_hashes[pos + shift]
            dist = popcount64(x)
            ok = np.flatnonzero(dist <= threshold)
            if not len(ok):
                continue
            x, dist, pos = x[ok], dist[ok], pos[ok]
            first = np.ones(len(ok), bool)
            for earlier in masks[:band]:  # keep a pair only in the first band it shares
                first &= (x & earlier) != 0
            a, b = order[pos[first]], order[pos[first] + shift]
            found.append(np.stack([np.minimum(a, b), np.maximum(a, b), dist[first]], axis=1))
    if not found:
        return np.zeros((0, 3), np.int64)
    pairs = np.concatenate(found).astype(np.int64)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def _near_pairs_collapsed(hashes: np.ndarray, threshold: int, plan: BandPlan | None, max_run: int) -> np.ndarray:
    """:func:`near_pairs` over the distinct hash values, expanded back to a spanning set of item pairs."""
    values, first, inverse, counts = np.unique(hashes, return_index=True, return_inverse=True, return_counts=True)
    found = []
    order = np.argsort(inverse, kind="stable")  # items grouped by value, in index order within a value
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    for v in np.flatnonzero(counts > 1):
        members = order[starts[v] : starts[v] + counts[v]]
        if counts[v] > max_run:
            a, b = np.full(len(members) - 1, members[0]), members[1:]
        else:
            a, b = np.triu_indices(len(members), 1)
            a, b = members[a], members[b]
        found.append(np.stack([a, b, np.zeros(len(a), np.int64)], axis=1))
    distinct = near_pairs(values, threshold, plan=plan)  # pairs between different values: via their first items
    if len(distinct):
        found.append(np.stack([first[distinct[:, 0]], first[distinct[:, 1]], distinct[:, 2]], axis=1))
    if not found:
        return np.zeros((0, 3), np.int64)
    pairs = np.concatenate(found).astype(np.int64)
    pairs = np.stack([np.minimum(pairs[:, 0], pairs[:, 1]), np.maximum(pairs[:, 0], pairs[:, 1]), pairs[:, 2]], axis=1)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


class BandIndex:
    """A fixed set of hashes (benchmark items) sorted once per band, probed by queries.

    ``query`` returns the pairs ``(query i, index j, distance)`` within the threshold: queries
    are never compared with each other, so the cost grows with the queries times the (small)
    index runs they hit, not with the queries squared."""

    def __init__(self, index: np.ndarray, threshold: int, *, plan: BandPlan | None = None):
        self.index = np.ascontiguousarray(index, dtype=np.uint64)
        self.threshold = threshold
        self.plan = plan or BandPlan.for_items(threshold, max(1, len(self.index)))
        self.masks = [np.uint64(m) for m in self.plan.masks]
        self.bands = []
        for mask in self.masks:
            keys = self.index & mask
            order = np.argsort(keys, kind="stable")
            self.bands.append((keys[order], order))

    def query(self, queries: np.ndarray) -> np.ndarray:
        queries = np.ascontiguousarray(queries, dtype=np.uint64)
        if not len(queries) or not len(self.index):
            return np.zeros((0, 3), np.int64)
        found = []
        for band, (mask, (sorted_keys, order)) in enumerate(zip(self.masks, self.bands)):
            qkeys = queries & mask
            lo = np.searchsorted(sorted_keys, qkeys, side="left")
            counts = np.searchsorted(sorted_keys, qkeys, side="right") - lo
            hit = np.flatnonzero(counts)
            if not len(hit):
                continue
            q = np.repeat(hit, counts[hit])  # every (query, index item in its run) pair
            offsets = np.arange(len(q)) - np.repeat(np.cumsum(counts[hit]) - counts[hit], counts[hit])
            j = order[lo[q] + offsets]
            x = queries[q] ^ self.index[j]
            dist = popcount64(x)
            first = dist <= self.threshold
            for earlier in self.masks[:band]:  # report a pair in the first band it shares only
                first &= (x & earlier) != 0
            found.append(np.stack([q[first], j[first], dist[first]], axis=1))
        if not found:
            return np.zeros((0, 3), np.int64)
        pairs = np.concatenate(found).astype(np.int64)
        return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def cross_pairs(queries: np.ndarray, index: np.ndarray, threshold: int, *, plan: BandPlan | None = None) -> np.ndarray:
    """Pairs ``(query i, index j, distance)`` within ``threshold`` between two hash sets (see
    :class:`BandIndex`, which keeps the sorted index for repeated probes)."""
    return BandIndex(index, threshold, plan=plan).query(queries)


def brute_force_pairs(hashes: np.ndarray, threshold: int, *, chunk: int = 2048) -> np.ndarray:
    """The quadratic reference: compare every pair (tests and benchmarks only)."""
    hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
    found = []
    for start in range(0, len(hashes), chunk):
        block = hashes[start : start + chunk]
        dist = popcount64(block[:, None] ^ hashes[None, :])
        i, j = np.nonzero(dist <= threshold)
        i = i + start
        keep = j > i
        found.append(np.stack([i[keep], j[keep], dist[i[keep] - start, j[keep]]], axis=1))
    if not found:
        return np.zeros((0, 3), np.int64)
    pairs = np.concatenate(found).astype(np.int64)
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]
