"""Near-duplicates of a large build, from compact arrays instead of every signature in memory.

Workers give each valid sample two small lists next to its signature: ``media_reps`` (its
representative pHashes: an image slot's hash, a few frames of a video slot) and ``text_bands``
(its conversation's MinHash LSH bucket keys, one 64-bit key per band). This module turns those
into candidate sample pairs with numpy only — sorted band keys and runs of equal keys, never a
Python loop over pairs — then verifies the candidates with the full signatures (only theirs are
read) and clusters them like :func:`.near.find_near_duplicates`:

- ``media``: pHash pairs within ``image_threshold`` (:func:`.bands.near_pairs`, identical hashes
  collapsed to a spanning set past ``max_run``);
- ``text``: samples sharing an LSH bucket;
- ``both`` (media samples need both, text-only samples text only): the text buckets, a bucket
  larger than ``max_run`` split by its members' media hashes (the second band) rather than
  enumerated.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .bands import _run_pairs, near_pairs
from .clusters import build_clusters, cluster_rows
from .config import NearDupConfig
from .near import _representatives, judge_pair, media_plan
from .signature import SampleSignature
from .text import lsh_bands

log = logging.getLogger(__name__)

MAX_RUN = 1000  # items sharing one key past which a run is split or starred, not enumerated


def media_reps(sig: SampleSignature, config: NearDupConfig) -> list[int]:
    """The representative pHashes a sample puts in the media search (as :func:`.near.media_items`)."""
    return [int(h) for slot in sig.slots for h in _representatives(slot, config.video_representatives)]


def text_bands(sig: SampleSignature, config: NearDupConfig) -> list[int]:
    """The conversation's LSH bucket keys: one 63-bit key per band (band index included)."""
    if sig.conv_minhash is None or config.text_level != "conversation":
        return []
    values = np.asarray(sig.conv_minhash, np.uint32)
    out = []
    for band, (s, e) in enumerate(_bands(config)):
        digest = hashlib.blake2b(values[s:e].tobytes(), digest_size=8, person=band.to_bytes(16, "big")).digest()
        out.append(int.from_bytes(digest, "big") >> 1)
    return out


_BANDS: dict = {}


def _bands(config: NearDupConfig) -> list[tuple[int, int]]:
    key = (config.text_threshold, config.minhash)
    if key not in _BANDS:
        _BANDS[key] = lsh_bands(config.text_threshold, config.minhash)
    return _BANDS[key]


@dataclass
class LiveArrays:
    """The live samples (row ``i``) and their search keys, as flat arrays."""

    keys: list[str]
    pixels: np.ndarray  # int64, the keep policy's resolution
    has_media: np.ndarray  # bool
    media_owner: np.ndarray  # int64 row of each representative hash
    media_hash: np.ndarray  # uint64
    text_owner: np.ndarray  # int64 row of each band key
    text_key: np.ndarray  # uint64

    @classmethod
    def build(cls, rows: Sequence[tuple[str, int, list[int], list[int]]]) -> LiveArrays:
        """From ``(key, pixels, media_reps, text_bands)`` per live sample."""
        keys = [r[0] for r in rows]
        m_counts = np.fromiter((len(r[2]) for r in rows), np.int64, len(rows))
        t_counts = np.fromiter((len(r[3]) for r in rows), np.int64, len(rows))
        media = np.fromiter((h for r in rows for h in r[2]), np.uint64, int(m_counts.sum()))
        text = np.fromiter((h for r in rows for h in r[3]), np.uint64, int(t_counts.sum()))
        idx = np.arange(len(rows), dtype=np.int64)
        return cls(keys, np.fromiter((r[1] for r in rows), np.int64, len(rows)), m_counts > 0,
                   np.repeat(idx, m_counts), media, np.repeat(idx, t_counts), text)  # fmt: skip


def _pairs_of(owner_pairs: np.ndarray) -> np.ndarray:
    """Distinct sample pairs (a < b) from item-owner pairs."""
    if not len(owner_pairs):
        return np.zeros((0, 2), np.int64)
    a, b = owner_pairs[:, 0], owner_pairs[:, 1]
    keep = a != b
    pairs = np.stack([np.minimum(a, b)[keep], np.maximum(a, b)[keep]], axis=1)
    return np.unique(pairs, axis=0) if len(pairs) else np.zeros((0, 2), np.int64)


def media_candidates(live: LiveArrays, config: NearDupConfig, max_run: int = MAX_RUN) -> np.ndarray:
    if len(live.media_hash) < 2:
        return np.zeros((0, 2), np.int64)
    plan = media_plan(len(live.media_hash), config)
    pairs = near_pairs(live.media_hash, config.image_threshold, plan=plan, max_run=max_run)
    return _pairs_of(np.stack([live.media_owner[pairs[:, 0]], live.media_owner[pairs[:, 1]]], axis=1))


def _runs(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    return starts, np.r_[starts[1:], len(sorted_keys)]


def text_candidates(live: LiveArrays, config: NearDupConfig, *, split_by_media: bool,
                    max_run: int = MAX_RUN) -> np.ndarray:  # fmt: skip
    """Sample pairs sharing an LSH bucket. A bucket of more than ``max_run`` samples is not
    enumerated: with ``split_by_media`` its media samples are paired by their pHashes (the
    candidates the policy would keep anyway) and its text-only samples starred; else starred."""
    if len(live.text_key) < 2:
        return np.zeros((0, 2), np.int64)
    order = np.argsort(live.text_key, kind="stable")
    keys, owners = live.text_key[order], live.text_owner[order]
    starts, ends = _runs(keys)
    sizes = ends - starts
    in_big = np.repeat(sizes > max_run, sizes)
    found = []
    small_keys, small_owners = keys[~in_big], owners[~in_big]
    for pos, shift in _run_pairs(small_keys):  # every pair of every small bucket, one shift at a time
        found.append(np.stack([small_owners[pos], small_owners[pos + shift]], axis=1))
    for s, e in zip(starts[sizes > max_run], ends[sizes > max_run]):  # the few large buckets
        members = np.unique(owners[s:e])
        log.warning("near-dup: a text bucket of %d samples is split by media instead of enumerated", len(members))
        media = members[live.has_media[members]] if split_by_media else members[:0]
        if len(media) > 1:
            sub = np.isin(live.media_owner, media)
            hashes, item_owner = live.media_hash[sub], live.media_owner[sub]
            pairs = near_pairs(hashes, config.image_threshold, max_run=max_run)
            found.append(np.stack([item_owner[pairs[:, 0]], item_owner[pairs[:, 1]]], axis=1))
        rest = np.setdiff1d(members, media)
        if len(rest) > 1:
            found.append(np.stack([np.full(len(rest) - 1, rest[0]), rest[1:]], axis=1))
    return _pairs_of(np.concatenate(found)) if found else np.zeros((0, 2), np.int64)


def _encode(pairs: np.ndarray) -> np.ndarray:
    return (pairs[:, 0].astype(np.int64) << 32) | pairs[:, 1].astype(np.int64)


def candidate_pairs(live: LiveArrays, config: NearDupConfig, max_run: int = MAX_RUN) -> np.ndarray:
    """The sample pairs to verify, by the policy of ``config``."""
    text_only = ~live.has_media
    text = text_candidates(live, config, split_by_media=config.policy == "both", max_run=max_run)
    if config.policy == "text" or not live.has_media.any():
        return text
    only_text = text[text_only[text[:, 0]] & text_only[text[:, 1]]]  # samples without media: text alone
    media = media_candidates(live, config, max_run)
    if config.policy == "both":  # media samples need both
        media = text[np.isin(_encode(text), _encode(media))]
    pairs = np.concatenate([only_text, media])
    return np.unique(pairs, axis=0) if len(pairs) else pairs


def near_duplicate_clusters(
    live: LiveArrays, config: NearDupConfig, signature: Callable[[int], SampleSignature], max_run: int = MAX_RUN
) -> list[dict]:
    """Verified, clustered near-duplicates: one report row per cluster (kept, removed, edges).
    ``signature(i)`` gives the full signature of live row ``i`` (read only for candidates)."""
    pairs = candidate_pairs(live, config, max_run)
    log.info("near-dup: %d candidate pairs among %d samples", len(pairs), len(live.keys))
    needed = np.unique(pairs) if len(pairs) else np.zeros(0, np.int64)
    sigs = {int(i): signature(int(i)) for i in needed}
    edges = [e for a, b in pairs.tolist() if (e := judge_pair(sigs[a], sigs[b], config)) is not None]
    pixels = {live.keys[i]: int(live.pixels[i]) for i in needed.tolist()}
    return cluster_rows(build_clusters(edges, pixels), kind="near_duplicate")
