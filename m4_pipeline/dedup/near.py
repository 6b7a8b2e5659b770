"""Near-duplicate samples: candidates from pHash bands and MinHash LSH, verified, then clustered.

Media candidates: every image slot's pHash and a few representative frames of every video slot
go through :func:`.bands.near_pairs`; two samples sharing a close hash are a candidate pair.
Text candidates: MinHash LSH over whole conversations (or over single turns). A candidate pair
is then verified in full (:func:`media_match`, :func:`text_match`) and accepted by the policy of
:class:`.config.NearDupConfig`. Accepted pairs are clustered with union-find; each cluster keeps
its highest-resolution member, then its smallest key.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .bands import BandPlan, near_pairs
from .clusters import Cluster, Edge, build_clusters, cluster_rows, duplicate_of
from .config import NearDupConfig
from .phash import popcount64
from .signature import SampleSignature, SlotHash
from .text import MinHashIndex, jaccard

log = logging.getLogger(__name__)


def _aligned(a: list[int], b: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The two frame-hash sequences at the same relative positions (the longer one resampled)."""
    if len(a) > len(b):
        b2, a2 = _aligned(b, a)
        return a2, b2
    pick = np.linspace(0, len(b) - 1, len(a)).round().astype(int) if len(a) > 1 else np.array([0])
    return np.asarray(a, np.uint64), np.asarray(b, np.uint64)[pick]


def slot_distance(a: SlotHash, b: SlotHash) -> float | None:
    """Hamming distance of two image slots, or mean distance of two videos' aligned frames."""
    if a.kind != b.kind or not a.phashes or not b.phashes:
        return None
    if a.kind == "image":
        return float((a.phashes[0] ^ b.phashes[0]).bit_count())
    x, y = _aligned(a.phashes, b.phashes)
    return float(popcount64(x ^ y).mean())


def media_match(a: SampleSignature, b: SampleSignature, config: NearDupConfig) -> float | None:
    """The worst aligned-slot distance when every slot pair is a near-duplicate, else None."""
    if not a.slots or len(a.slots) != len(b.slots):
        return None
    worst = 0.0
    for sa, sb in zip(a.slots, b.slots):
        d = slot_distance(sa, sb)
        limit = config.image_threshold if sa.kind == "image" else config.video_threshold
        if d is None or d > limit:
            return None
        worst = max(worst, d)
    return worst


def text_match(a: SampleSignature, b: SampleSignature, config: NearDupConfig) -> float | None:
    """The (lowest aligned-turn) estimated Jaccard when at or above the threshold, else None."""
    if config.text_level == "conversation":
        if a.conv_minhash is None or b.conv_minhash is None:
            return None
        sim = jaccard(a.conv_minhash, b.conv_minhash)
    else:
        if not a.turn_minhash or len(a.turn_minhash) != len(b.turn_minhash):
            return None
        sim = min(jaccard(x, y) for x, y in zip(a.turn_minhash, b.turn_minhash))
    return sim if sim >= config.text_threshold else None


def _representatives(slot: SlotHash, k: int) -> list[int]:
    if slot.kind == "image":
        return slot.phashes[:1]
    pick = np.unique(np.linspace(0, len(slot.phashes) - 1, min(k, len(slot.phashes))).round().astype(int))
    return [slot.phashes[i] for i in pick]


def media_items(sig: SampleSignature, config: NearDupConfig) -> list[tuple[tuple[str, int, int], int]]:
    """The (item id, pHash) items a sample puts in the LSH: ``((key, slot, n), hash)``, one per
    image slot and ``video_representatives`` per video slot. Feed them to ``bands.band_records``."""
    return [
        ((sig.key, s, n), h)
        for s, slot in enumerate(sig.slots)
        for n, h in enumerate(_representatives(slot, config.video_representatives))
    ]


def media_candidates(sigs: Sequence[SampleSignature], config: NearDupConfig) -> set[tuple[int, int]]:
    """Sample index pairs (i < j) sharing at least one close representative hash."""
    owners, hashes = [], []
    for i, sig in enumerate(sigs):
        for _, h in media_items(sig, config):
            owners.append(i)
            hashes.append(h)
    if len(hashes) < 2:
        return set()
    hashes_arr = np.asarray(hashes, np.uint64)
    pairs = near_pairs(hashes_arr, config.image_threshold, plan=media_plan(len(hashes_arr), config))
    owners_arr = np.asarray(owners)
    a, b = owners_arr[pairs[:, 0]], owners_arr[pairs[:, 1]]
    keep = a != b
    return {(int(min(x, y)), int(max(x, y))) for x, y in zip(a[keep], b[keep])}


def text_candidates(sigs: Sequence[SampleSignature], config: NearDupConfig) -> set[tuple[int, int]]:
    """Sample index pairs (i < j) that MinHash LSH puts in a common bucket, verified on Jaccard."""
    index = MinHashIndex(config.text_threshold, config.minhash)
    if config.text_level == "conversation":
        for i, sig in enumerate(sigs):
            if sig.conv_minhash is not None:
                index.add(i, sig.conv_minhash)
        return {(min(a, b), max(a, b)) for a, b, _ in index.self_pairs()}  # self_pairs orders ids by str
    for i, sig in enumerate(sigs):
        for t, m in enumerate(sig.turn_minhash):
            index.add((i, t), m)
    return {(min(a[0], b[0]), max(a[0], b[0])) for a, b, _ in index.self_pairs() if a[0] != b[0]}


@dataclass
class NearDupResult:
    clusters: list[Cluster]
    rows: list[dict]  # one JSON-ready row per cluster
    duplicate_of: dict[str, str]  # removed key -> kept key


def judge_pair(a: SampleSignature, b: SampleSignature, config: NearDupConfig) -> Edge | None:
    """Verify one candidate pair under the policy: the edge to cluster on, or None."""
    text = text_match(a, b, config)
    if not (a.has_media or b.has_media) or config.policy == "text":
        return Edge(a.key, b.key, "near_text", {"jaccard": text}) if text is not None else None
    media = media_match(a, b, config)
    if config.policy == "media":
        return Edge(a.key, b.key, "near_media", {"hamming": media}) if media is not None else None
    if media is not None and text is not None:
        return Edge(a.key, b.key, "near_media_text", {"hamming": media, "jaccard": text})
    return None


def media_plan(num_items: int, config: NearDupConfig) -> BandPlan:
    if config.lsh_blocks:
        return BandPlan(threshold=config.image_threshold, blocks=config.lsh_blocks)
    return BandPlan.for_items(config.image_threshold, num_items)


def find_near_duplicates(
    sigs: Sequence[SampleSignature],
    config: NearDupConfig | None = None,
    *,
    media_candidates_fn=None,
    text_candidates_fn=None,
) -> NearDupResult:
    """Near-duplicate clusters among signatures (run it on the survivors of exact dedup).

    ``media_candidates_fn(sigs, config) -> {(i, j)}`` and ``text_candidates_fn`` replace the
    single-process candidate searches (the executor passes ones that run the bands on Ray)."""
    config = config or NearDupConfig()
    keys = [s.key for s in sigs]
    if len(set(keys)) != len(keys):
        raise ValueError("signatures must have distinct keys")
    need_text = config.policy in ("text", "both") or any(not s.has_media for s in sigs)
    need_media = config.policy in ("media", "both")
    text_pairs = (text_candidates_fn or text_candidates)(sigs, config) if need_text else set()
    media_pairs = (media_candidates_fn or media_candidates)(sigs, config) if need_media else set()
    if config.policy == "both":  # media samples need both; text-only samples need text only
        text_only = {(i, j) for i, j in text_pairs if not (sigs[i].has_media or sigs[j].has_media)}
        candidates = (text_pairs & media_pairs) | text_only
    else:
        candidates = text_pairs | media_pairs
    log.info("near-dup: %d text and %d media candidate pairs", len(text_pairs), len(media_pairs))
    edges = [e for i, j in sorted(candidates) if (e := judge_pair(sigs[i], sigs[j], config)) is not None]
    clusters = build_clusters(edges, {s.key: s.pixels for s in sigs})
    return NearDupResult(clusters, cluster_rows(clusters, kind="near_duplicate"), duplicate_of(clusters))
