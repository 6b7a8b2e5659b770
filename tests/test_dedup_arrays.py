"""Near-duplicates from compact arrays give exactly the clusters of the in-memory search."""

import random

import numpy as np
import pytest

from m4_pipeline.dedup import NearDupConfig, find_near_duplicates
from m4_pipeline.dedup.bands import brute_force_pairs, near_pairs
from m4_pipeline.dedup.candidates import LiveArrays, media_reps, near_duplicate_clusters, text_bands
from m4_pipeline.dedup.signature import SampleSignature, SlotHash
from m4_pipeline.dedup.text import minhash

WORDS = "a b c d e f g h i j k l m n o p q r s t u v w x y z".split()


def signatures(config, n=400, groups=40, seed=0):
    rng = random.Random(seed)
    base = [rng.getrandbits(63) for _ in range(groups)]
    texts = [" ".join(rng.choice(WORDS) for _ in range(30)) for _ in range(groups)]
    sigs = []
    for i in range(n):
        j = i % groups
        h = base[j] ^ (1 << rng.randrange(64) if rng.random() < 0.5 else 0)
        t = texts[j] if rng.random() < 0.7 else " ".join(rng.choice(WORDS) for _ in range(30))
        slots = [SlotHash("image", [h], ["x"], 100)] if i % 7 else []  # every 7th sample is text-only
        sigs.append(SampleSignature(key=f"k{i:04d}", pixels=rng.randrange(100, 1000), slots=slots,
                                    conv_minhash=minhash(t, config.minhash)))  # fmt: skip
    return sigs


@pytest.mark.parametrize("policy", ["both", "media", "text"])
def test_array_search_matches_the_in_memory_search(policy):
    config = NearDupConfig(policy=policy)
    sigs = signatures(config)
    live = LiveArrays.build([(s.key, s.pixels, media_reps(s, config), text_bands(s, config)) for s in sigs])
    assert near_duplicate_clusters(live, config, lambda i: sigs[i]) == find_near_duplicates(sigs, config).rows


def test_a_huge_group_of_one_hash_stays_linear_and_connected():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, 5000, dtype=np.int64).astype(np.uint64)
    hashes[:3000] = hashes[0]  # one blank frame in 3000 videos
    hashes[4000:4010] = hashes[3999] ^ np.uint64(1)
    exact = brute_force_pairs(hashes, 6)
    capped = near_pairs(hashes, 6, max_run=1000)
    assert len(exact) > 4_000_000 and len(capped) < 3100  # a star, not 4.5M pairs
    assert near_pairs(hashes[3000:], 6, max_run=1000).tolist() == near_pairs(hashes[3000:], 6).tolist()

    def components(pairs, n):
        parent = list(range(n))

        def find(x):
            while parent[x] != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for a, b, _ in pairs:
            parent[find(int(a))] = find(int(b))
        return len({find(i) for i in range(n)})

    assert components(capped, len(hashes)) == components(exact, len(hashes))
