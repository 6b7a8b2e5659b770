"""Exact-duplicate keys: one small strategy class per notion of "the same sample".

An :class:`ExactKey` maps a :class:`~m4_pipeline.sample.Sample` to a hex digest (the outcome
row's ``fingerprint``); samples with equal digests are exact duplicates, and
:func:`m4_pipeline.outcomes.exact_duplicates` — the one place that removes them — keeps the
smallest key of each.

- ``text``:  roles + whitespace-normalized turn texts (the same conversation over any media);
- ``media``: the media bytes in placeholder order (the same images/frames with any text; a
  video reference: its source video's sha256 and frames);
- ``both``:  text and media (what the pipeline has always removed).
"""

from __future__ import annotations

import hashlib

from ..sample import Sample
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
        h.update(m.digest())


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
