"""Exact-duplicate keys: one small strategy class per notion of "the same sample".

An :class:`ExactKey` maps a :class:`~m4_pipeline.sample.Sample` to a hex digest; samples with
equal digests are exact duplicates. :class:`TextMediaKey` (the default) gives the same digest as
``process.fingerprint`` did, so swapping one for the other changes no duplicate and no report.

- ``text``:  roles + whitespace-normalized turn texts (the same conversation over any media);
- ``media``: the media bytes in placeholder order (the same images/frames with any text);
- ``both``:  text and media (what the pipeline has always removed).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping

from ..sample import Sample
from .clusters import Cluster, Edge, build_clusters
from .text import exact_text


def media_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _update_text(h, sample: Sample) -> None:
    for turn in sample.conversations:
        h.update(turn.role.encode())
        h.update(b"\x00")
        h.update(exact_text(turn.value).encode())
        h.update(b"\x01")


def _update_media(h, sample: Sample) -> None:
    for m in sample.media:
        h.update(hashlib.sha256(m.data).digest())


class ExactKey:
    """Base class: ``key(sample)`` is the exact-duplicate digest; ``name`` is its report reason."""

    name = "exact"

    def __call__(self, sample: Sample) -> str:
        return self.key(sample)

    def key(self, sample: Sample) -> str:
        raise NotImplementedError


class TextKey(ExactKey):
    name = "exact_text"

    def key(self, sample: Sample) -> str:
        h = hashlib.sha256(b"text\x00")
        _update_text(h, sample)
        return h.hexdigest()


class MediaKey(ExactKey):
    """Media bytes in order; a sample without media has no media key of its own (its key
    then falls back to its text, so text-only samples are never all "duplicates" of each other)."""

    name = "exact_media"

    def key(self, sample: Sample) -> str:
        if not sample.media:
            return TextKey().key(sample)
        h = hashlib.sha256(b"media\x00")
        _update_media(h, sample)
        return h.hexdigest()


class TextMediaKey(ExactKey):
    """Text and media; byte-for-byte the digest of ``process.fingerprint``."""

    name = "exact_text_media"

    def key(self, sample: Sample) -> str:
        h = hashlib.sha256()
        _update_text(h, sample)
        _update_media(h, sample)
        return h.hexdigest()


EXACT_KEYS: dict[str, type[ExactKey]] = {"text": TextKey, "media": MediaKey, "both": TextMediaKey}


def get_exact_key(name: str) -> ExactKey:
    try:
        return EXACT_KEYS[name]()
    except KeyError:
        raise KeyError(f"unknown exact key {name!r}; valid: {', '.join(sorted(EXACT_KEYS))}") from None


def exact_clusters(
    keyed: Iterable[tuple[str, str]], *, reason: str, pixels: Mapping[str, int] | None = None
) -> list[Cluster]:
    """Clusters of sample keys sharing a digest, from (sample key, digest) pairs.

    Every member gets an edge to the group's smallest key, so the report names the digest's
    whole group; the kept member follows the keep policy of :mod:`.clusters`.
    """
    by_digest: dict[str, list[str]] = defaultdict(list)
    for key, digest in keyed:
        by_digest[digest].append(key)
    edges = []
    for digest, keys in by_digest.items():
        keys = sorted(set(keys))
        edges += [Edge(keys[0], k, reason, digest) for k in keys[1:]]
    return build_clusters(edges, pixels)
