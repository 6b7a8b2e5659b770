"""Near-duplicate image detection quality: pHash + banded LSH at a Hamming threshold, against
exact pHash matching (identical hashes only, what Data-Juicer's image dedup does).

Images: seeded synthetic pictures (m4_pipeline.synthetic) of many sizes, plus natural-ish
1/f-noise textures. For each transform, the pool is originals + their transformed copies +
their horizontal flips; a found pair is right only when it is (original, its own transformed
copy). Precision = right found pairs / all found pairs; recall = right found pairs / originals.
Flips and other images are the negatives.

    python benchmarks/dedup_quality.py [--images 600] [--threshold 6] [--sweep 4 6 8 10]
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from m4_pipeline.dedup.bands import brute_force_pairs, near_pairs
from m4_pipeline.dedup.config import NearDupConfig
from m4_pipeline.dedup.phash import phash_images, popcount64
from m4_pipeline.synthetic import synthetic_image

SIZES = [(320, 240), (640, 480), (256, 256), (500, 333), (180, 320), (800, 600), (400, 300)]


def noise_texture(seed: int, size: tuple[int, int]) -> Image.Image:
    """Coloured 1/f noise (natural images have roughly this spectrum), lightly blurred."""
    rng = np.random.default_rng(seed)
    w, h = size
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.rfftfreq(w), indexing="ij")
    falloff = 1.0 / np.maximum(np.hypot(fx, fy), 1.0 / max(w, h)) ** rng.uniform(0.8, 1.6)
    channels = []
    for _ in range(3):
        spectrum = (rng.normal(size=fx.shape) + 1j * rng.normal(size=fx.shape)) * falloff
        plane = np.fft.irfft2(spectrum, s=(h, w))
        channels.append((plane - plane.min()) / (np.ptp(plane) + 1e-9) * 255)
    img = Image.fromarray(np.stack(channels, axis=-1).astype(np.uint8))
    return img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))


def make_images(n: int) -> list[Image.Image]:
    images = []
    for i in range(n):
        size = SIZES[i % len(SIZES)]
        images.append(noise_texture(i, size) if i % 3 == 2 else synthetic_image(10_000 + i, size))
    return images


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def crop(img: Image.Image, frac: float) -> Image.Image:
    dx, dy = round(img.width * frac / 2), round(img.height * frac / 2)
    return img.crop((dx, dy, img.width - dx, img.height - dy))


TRANSFORMS = {
    "resize 0.5x": lambda im: im.resize((im.width // 2, im.height // 2), Image.BICUBIC),
    "resize to 224 sq.": lambda im: im.resize((224, 224), Image.BILINEAR),
    "JPEG q50": lambda im: jpeg(im, 50),
    "crop 5%": lambda im: crop(im, 0.05),
    "brightness +20%": lambda im: ImageEnhance.Brightness(im).enhance(1.2),
}


def evaluate(originals: np.ndarray, copies: np.ndarray, flips: np.ndarray, threshold: int) -> tuple[float, float, int]:
    n = len(originals)
    pool = np.concatenate([originals, copies, flips])
    pairs = near_pairs(pool, threshold)
    right = int(np.count_nonzero(pairs[:, 1] == pairs[:, 0] + n))
    flip_hits = int(np.count_nonzero(pairs[:, 1] == pairs[:, 0] + 2 * n) + np.count_nonzero(
        (pairs[:, 0] >= n) & (pairs[:, 0] < 2 * n) & (pairs[:, 1] == pairs[:, 0] + n)))  # fmt: skip
    precision = right / len(pairs) if len(pairs) else 1.0
    return precision, right / n, flip_hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--threshold", type=int, default=NearDupConfig().image_threshold)
    parser.add_argument("--sweep", type=int, nargs="*", default=[4, 6, 8, 10])
    args = parser.parse_args()
    t0 = time.perf_counter()
    images = make_images(args.images)
    originals = phash_images(images)
    flips = phash_images([ImageOps.mirror(im) for im in images])
    copies = {name: phash_images([fn(im) for im in images]) for name, fn in TRANSFORMS.items()}
    print(f"{args.images} images ({args.images - args.images // 3} synthetic scenes, {args.images // 3} 1/f textures)")
    print(f"pHash + banded LSH at Hamming <= {args.threshold}  vs  baseline: identical pHash only (threshold 0)\n")
    header = f"{'transform':<19} {'precision':>9} {'recall':>7} {'flip FP':>7} | {'base prec':>9} {'base rec':>8}"
    print(header)
    print("-" * len(header))
    for name, c in copies.items():
        p, r, f = evaluate(originals, c, flips, args.threshold)
        bp, br, _ = evaluate(originals, c, flips, 0)
        print(f"{name:<19} {p:>9.4f} {r:>7.4f} {f:>7d} | {bp:>9.4f} {br:>8.4f}")
    print("\nthreshold sweep: precision / recall per transform")
    print(f"{'t':>3} " + " ".join(f"{n:>19}" for n in copies))
    for t in sorted({0, *args.sweep}):
        cells = [evaluate(originals, c, flips, t)[:2] for c in copies.values()]
        print(f"{t:>3} " + " ".join(f"{p:>9.4f} / {r:<7.4f}" for p, r in cells))
    flip_d = popcount64(originals ^ flips)
    diff_d = brute_force_pairs(originals, 16)[:, 2]
    print("\nHamming distances: positives p50 / p95 / max; negatives min / p5")
    for name, c in copies.items():
        d = popcount64(originals ^ c)
        print(f"  {name:<19} {np.median(d):5.1f} / {np.percentile(d, 95):5.1f} / {d.max():3d}")
    print(f"  {'horizontal flip':<19} {flip_d.min():5d} / {np.percentile(flip_d, 5):5.1f}")
    print(f"  {'different images':<19} {diff_d.min() if len(diff_d) else '>16':>5} (closest pair of {len(originals)})")
    print(f"\n({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
