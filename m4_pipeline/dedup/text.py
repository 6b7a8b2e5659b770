"""Text normalization, word shingles and MinHash signatures (datasketch) for near-duplicate text.

Two normalizations serve two purposes. :func:`exact_text` only collapses whitespace (the exact
key must keep every other difference). :func:`fuzzy_text` is for similarity: Unicode NFKC,
lower case, media placeholders and ST coordinate tokens removed, punctuation dropped, so that
"<image>\\nWhat is shown?" and "what is shown" compare equal.

MinHash signatures are plain ``uint32`` arrays (datasketch's hash values) so that workers can
compute them and ship them in small rows; :class:`MinHashIndex` wraps ``datasketch.MinHashLSH``
for the single-process driver, and :func:`minhash_band_records` gives the same bands as records
keyed by (band, bucket) for a distributed shuffle.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

_PLACEHOLDER = re.compile(r"<(?:image|video)>|<(?:TEMP|WIDTH|HEIGHT)-(?:INPUT|OUTPUT|\d{3})>|<s>|<e>|<bboxes>")
_NON_WORD = re.compile(r"[^\w]+")
SCHEME = "affine32"  # datasketch >= 2.0 hash scheme: 32-bit values, stored as uint32
# datasketch weighs false positives against false negatives when it picks its bands; candidates
# are verified on the estimated Jaccard anyway, so a false positive only costs a comparison.
LSH_WEIGHTS = (0.1, 0.9)


def _datasketch():
    try:
        import datasketch
    except ImportError as err:  # pragma: no cover - declared by the dedup extra
        raise ImportError("near-duplicate text needs datasketch: pip install 'm4-pipeline[dedup]'") from err
    return datasketch


def exact_text(text: str) -> str:
    return " ".join(text.split())


def fuzzy_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = _PLACEHOLDER.sub(" ", text).lower()
    return " ".join(_NON_WORD.sub(" ", text).split())


def shingles(text: str, size: int) -> set[bytes]:
    """Word ``size``-grams of the fuzzy-normalized text (the whole text when it is shorter)."""
    words = fuzzy_text(text).split()
    if not words:
        return set()
    if len(words) <= size:
        return {" ".join(words).encode()}
    return {" ".join(words[i : i + size]).encode() for i in range(len(words) - size + 1)}


@dataclass(frozen=True, kw_only=True)
class MinHashConfig:
    num_perm: int = 128
    seed: int = 1
    shingle: int = 3  # words per shingle

    def __post_init__(self) -> None:
        if self.num_perm < 16 or self.shingle < 1:
            raise ValueError(f"num_perm must be >= 16 and shingle >= 1, got {self.num_perm}, {self.shingle}")


_PERMUTATIONS: dict[tuple[int, int], object] = {}


def minhash(text: str, config: MinHashConfig) -> np.ndarray:
    """The MinHash signature (``uint32[num_perm]``) of a text's shingles; empty text: all max."""
    ds = _datasketch()
    key = (config.num_perm, config.seed)
    if key not in _PERMUTATIONS:  # generating the permutations costs more than hashing a text
        _PERMUTATIONS[key] = ds.MinHash(num_perm=config.num_perm, seed=config.seed, scheme=SCHEME).permutations
    m = ds.MinHash(num_perm=config.num_perm, seed=config.seed, permutations=_PERMUTATIONS[key], scheme=SCHEME)
    grams = shingles(text, config.shingle)
    if grams:
        m.update_batch(sorted(grams))
    return np.asarray(m.hashvalues, dtype=np.uint32)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of two MinHash signatures."""
    if len(a) != len(b):
        raise ValueError(f"signatures of different lengths: {len(a)} and {len(b)}")
    return float(np.count_nonzero(np.asarray(a) == np.asarray(b))) / len(a)


def _lean(values: np.ndarray, config: MinHashConfig):
    return _datasketch().LeanMinHash(seed=config.seed, hashvalues=values, scheme=SCHEME)


class MinHashIndex:
    """``datasketch.MinHashLSH`` over signatures: candidates at ``threshold``, then verified on
    the estimated Jaccard (LSH alone lets through some pairs below the threshold)."""

    def __init__(self, threshold: float, config: MinHashConfig) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold, self.config = threshold, config
        self.lsh = _datasketch().MinHashLSH(threshold=threshold, num_perm=config.num_perm, weights=LSH_WEIGHTS)
        self.signatures: dict[Hashable, np.ndarray] = {}

    def add(self, doc_id: Hashable, signature: np.ndarray) -> None:
        if doc_id in self.signatures:
            raise ValueError(f"document {doc_id!r} already in the index")
        self.signatures[doc_id] = signature
        self.lsh.insert(doc_id, _lean(signature, self.config), check_duplication=False)

    def query(self, signature: np.ndarray) -> list[tuple[Hashable, float]]:
        """Indexed documents whose estimated Jaccard with ``signature`` is at least the threshold."""
        out = []
        for doc_id in self.lsh.query(_lean(signature, self.config)):
            sim = jaccard(signature, self.signatures[doc_id])
            if sim >= self.threshold:
                out.append((doc_id, sim))
        return sorted(out, key=lambda x: str(x[0]))

    def self_pairs(self) -> list[tuple[Hashable, Hashable, float]]:
        """Every indexed pair at or above the threshold, each once, ids ordered by ``str``."""
        pairs = set()
        for doc_id, sig in self.signatures.items():
            for other, sim in self.query(sig):
                if other != doc_id:
                    a, b = sorted((doc_id, other), key=str)
                    pairs.add((a, b, sim))
        return sorted(pairs, key=lambda p: (str(p[0]), str(p[1])))


def lsh_bands(threshold: float, config: MinHashConfig) -> list[tuple[int, int]]:
    """The (start, end) hash-value ranges datasketch's LSH uses for this threshold."""
    lsh = _datasketch().MinHashLSH(threshold=threshold, num_perm=config.num_perm, weights=LSH_WEIGHTS)
    return [(int(s), int(e)) for s, e in lsh.hashranges]


def minhash_band_records(
    doc_id: Hashable, signature: np.ndarray, bands: Sequence[tuple[int, int]]
) -> list[tuple[tuple[int, bytes], Hashable]]:
    """((band, bucket bytes), doc id) per band: documents sharing a record are LSH candidates."""
    values = np.asarray(signature, np.uint32)
    return [((i, values[s:e].tobytes()), doc_id) for i, (s, e) in enumerate(bands)]


def candidate_pairs_in_bucket(doc_ids: Iterable[Hashable]) -> list[tuple[Hashable, Hashable]]:
    ids = sorted(set(doc_ids), key=str)
    return [(a, b) for i, a in enumerate(ids) for b in ids[i + 1 :]]
