"""Deduplication and benchmark decontamination, plain Python (no Ray).

Layout::

    exact.py       ExactKey strategies (text / media / both) and exact-duplicate clusters
    phash.py       64-bit pHash, bit-identical to imagehash.phash, batched; Hamming helpers
    bands.py       banded pigeonhole LSH for Hamming search: band_records / pairs_in_band / near_pairs
    clusters.py    union-find, the keep policy (most pixels, then smallest key), report rows
    text.py        text normalization, shingles, MinHash (datasketch), MinHash LSH and its bands
    signature.py   SampleSignature: a sample's hashes (media + text), JSON-ready rows
    near.py        near-duplicate samples: candidates, verification, policy, clusters
    config.py      NearDupConfig, DecontamConfig
    decontam.py    benchmark index and contamination rows
    evalsets/      one module per benchmark layout (read + write_miniature) and their registry
"""

from .bands import BandPlan, band_records, brute_force_pairs, cross_pairs, near_pairs, pairs_in_band
from .clusters import Cluster, Edge, UnionFind, build_clusters, cluster_rows, duplicate_of
from .config import DecontamConfig, NearDupConfig
from .decontam import BenchmarkIndex, build_index, contamination_summary, find_contamination, index_items
from .exact import EXACT_KEYS, ExactKey, MediaKey, TextKey, TextMediaKey, get_exact_key
from .near import NearDupResult, find_near_duplicates, judge_pair, media_items, media_match, text_match
from .phash import hamming, phash_bytes, phash_image, phash_images
from .signature import SampleSignature, SlotHash, signature_of
from .text import MinHashConfig, MinHashIndex, candidate_pairs_in_bucket, lsh_bands, minhash, minhash_band_records

__all__ = [
    "BandPlan", "BenchmarkIndex", "Cluster", "DecontamConfig", "EXACT_KEYS", "Edge", "ExactKey", "MediaKey",
    "MinHashConfig", "MinHashIndex", "NearDupConfig", "NearDupResult", "SampleSignature", "SlotHash", "TextKey",
    "TextMediaKey", "UnionFind", "band_records", "brute_force_pairs", "build_clusters", "build_index",
    "candidate_pairs_in_bucket", "cluster_rows", "contamination_summary", "cross_pairs", "duplicate_of",
    "find_contamination", "find_near_duplicates", "get_exact_key", "hamming", "index_items",
    "judge_pair", "lsh_bands", "media_items", "media_match", "minhash", "minhash_band_records", "near_pairs",
    "pairs_in_band", "phash_bytes", "phash_image", "phash_images", "signature_of", "text_match",
]  # fmt: skip
