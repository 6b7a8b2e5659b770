"""Dedup speed: pHash throughput against imagehash, and the banded LSH candidate search against
the quadratic all-pairs search.

1. pHash: the same images hashed by ``imagehash.phash`` (one call per image) and by
   ``m4_pipeline.dedup.phash`` (batched DCT), from decoded PIL images and from JPEG bytes;
   the bits are compared. ``draft`` decodes JPEG at reduced scale (not bit-identical).
2. Search: N random 64-bit hashes with planted near-duplicates (within the threshold);
   ``near_pairs`` (banded pigeonhole LSH, exact recall) on all N, one process, one core;
   all-pairs brute force measured on a smaller set and extrapolated by (N / n)^2.

    python benchmarks/dedup_speed.py [--images 200] [--hashes 1000000] [--brute 20000]
"""

from __future__ import annotations

import argparse
import io
import resource
import time

import numpy as np
from PIL import Image

from m4_pipeline.dedup.bands import BandPlan, brute_force_pairs, near_pairs
from m4_pipeline.dedup.config import NearDupConfig
from m4_pipeline.dedup.phash import hash_hex, phash_bytes, phash_images, popcount64
from m4_pipeline.synthetic import synthetic_image

SIZES = [(640, 480), (320, 240), (800, 600), (500, 375), (1024, 768)]


def timed(fn, *args, repeat: int = 2, **kwargs):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - t0)
    return best, out


def phash_table(n: int) -> None:
    import imagehash

    images = [synthetic_image(20_000 + i, SIZES[i % len(SIZES)]) for i in range(n)]
    blobs = []
    for im in images:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=90)
        blobs.append(buf.getvalue())
    mean_px = np.mean([im.width * im.height for im in images]) / 1e6
    t_ref, ref = timed(lambda: [str(imagehash.phash(im)) for im in images])
    t_ref_b, ref_b = timed(lambda: [str(imagehash.phash(Image.open(io.BytesIO(b)))) for b in blobs])
    rows = [
        ("decoded PIL", "imagehash.phash (baseline)", t_ref, n),
        ("decoded PIL", "phash_images", *_check(timed(phash_images, images), ref)),
        ("decoded PIL", "phash_images workers=2", *_check(timed(phash_images, images, workers=2), ref)),
        ("JPEG bytes", "imagehash.phash(open) (baseline)", t_ref_b, n),
        ("JPEG bytes", "phash_bytes", *_check(timed(phash_bytes, blobs), ref_b)),
        ("JPEG bytes", "phash_bytes workers=2", *_check(timed(phash_bytes, blobs, workers=2), ref_b)),
    ]
    t_draft, draft = timed(phash_bytes, blobs, draft=True)
    exact = np.asarray([int(h, 16) for h in ref_b], np.uint64)
    draft_d = popcount64(draft ^ exact)
    print(f"pHash throughput: {n} images, mean {mean_px:.2f} MP, best of 2 runs, one process\n")
    header = f"{'input':<12} {'method':<34} {'hashes/s':>9} {'vs baseline':>11} {'bit-identical':>14}"
    print(header)
    print("-" * len(header))
    base = {}
    for inp, name, t, same in rows:
        base.setdefault(inp, t)
        print(f"{inp:<12} {name:<34} {n / t:>9.0f} {base[inp] / t:>10.2f}x {f'{same}/{n}':>14}")
    print(
        f"{'JPEG bytes':<12} {'phash_bytes draft=True':<34} {n / t_draft:>9.0f} {base['JPEG bytes'] / t_draft:>10.2f}x"
        f" {f'{int((draft_d == 0).sum())}/{n}':>14}   (mean Hamming to exact {draft_d.mean():.2f}, max {draft_d.max()})"
    )


def _check(result, ref) -> tuple[float, int]:
    t, hashes = result
    return t, sum(hash_hex(h) == r for h, r in zip(hashes, ref))


def planted_hashes(n: int, threshold: int, rng: np.random.Generator, planted_frac: float = 0.01):
    """Random hashes; a fraction are copies of others with 1..threshold bits flipped."""
    hashes = rng.integers(0, 2**64 - 1, n, dtype=np.uint64, endpoint=True)
    k = int(n * planted_frac)
    src = rng.choice(np.arange(k, n), size=k, replace=False)
    for i, s in enumerate(src):
        flips = rng.choice(64, size=int(rng.integers(1, threshold + 1)), replace=False)
        hashes[i] = int(hashes[s]) ^ int(sum(1 << int(b) for b in flips))
    planted = {(min(i, int(s)), max(i, int(s))) for i, s in enumerate(src)}
    return hashes, planted


def search_table(n: int, n_brute: int, thresholds: list[int]) -> None:
    print(f"\nCandidate search: {n:,} random 64-bit hashes, 1% planted near-duplicates, one core\n")
    header = (
        f"{'t':>2} {'bands':>5} {'LSH on N (s)':>12} {'pairs':>7} {'planted found':>13} | "
        f"{'LSH n (s)':>9} {'brute n (s)':>11} {'same':>5} {'brute N est. (s)':>16} {'speed-up':>9}"
    )
    print(header)
    print("-" * len(header))
    for t in thresholds:
        rng = np.random.default_rng(t)
        hashes, planted = planted_hashes(n, t, rng)
        plan = BandPlan.for_items(t, n)
        t_lsh, pairs = timed(near_pairs, hashes, t, plan=plan, repeat=1)
        found = {(int(a), int(b)) for a, b, _ in pairs}
        small = hashes[n - n_brute :]
        t_small, lsh_small = timed(near_pairs, small, t)
        t_brute, brute = timed(brute_force_pairs, small, t)
        est = t_brute * (n / n_brute) ** 2
        print(
            f"{t:>2} {plan.num_bands:>5} {t_lsh:>12.1f} {len(pairs):>7} {len(planted & found):>6}/{len(planted):<6} | "
            f"{t_small:>9.2f} {t_brute:>11.1f} {str(np.array_equal(lsh_small, brute)):>5} {est:>16,.0f} "
            f"{est / t_lsh:>8,.0f}x"
        )
    print(f"\npeak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--hashes", type=int, default=1_000_000)
    parser.add_argument("--brute", type=int, default=20_000)
    parser.add_argument("--thresholds", type=int, nargs="+", default=[NearDupConfig().image_threshold, 8])
    args = parser.parse_args()
    phash_table(args.images)
    search_table(args.hashes, args.brute, args.thresholds)


if __name__ == "__main__":
    main()
