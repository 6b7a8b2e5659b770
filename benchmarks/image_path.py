"""The image path (normalize_image, then the dedup pHash) vs bare PIL doing the same work, per core.

    .venv/bin/python benchmarks/image_path.py [--images 200] [--repeat 3] [--cpu N]

Runs pinned to one CPU. Makes a mixed set of photo-like images (a synthetic scene with sensor
noise, so JPEGs are as large as photos': see the KB column): JPEGs within the size cap (both
paths keep their bytes after a full decode), larger JPEGs, PNGs with alpha, palette PNGs and CMYK
JPEGs; the longer side is capped at 768.

Table 1, normalization. The baseline is the shortest PIL code with the same output: full decode,
keep an acceptable JPEG's bytes, else composite alpha on white, convert to RGB, resize (bicubic)
and encode at quality 95. Both outputs are checked byte-identical.

Table 2, normalization + pHash (what a worker does per image with near-dedup on). Ours hashes
kept JPEGs from the pixels normalization decoded (``Media.decoded``) and other images from their
new bytes; "before" is the same with the pixels dropped (the bytes decoded again, as before);
the baseline is PIL + ``imagehash.phash`` on the decoded pixels where the bytes were kept and on
the decoded new bytes otherwise. The hashes are checked identical.

Figures are CPU milliseconds per image (this process is single-threaded here, so wall time is
the same up to scheduling noise; the wall ratio is printed too), best of ``--repeat`` runs.
Ratio = baseline / ours (1.0: as fast as bare PIL; target >= 0.8 for table 1, >= 0.9 for table 2).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from m4_pipeline.dedup.signature import media_phashes  # noqa: E402
from m4_pipeline.media.images import ImagePolicy, normalize_image  # noqa: E402
from m4_pipeline.sample import Media  # noqa: E402
from m4_pipeline.synthetic import synthetic_image  # noqa: E402

MAX_SIDE = 768
KINDS = ["jpeg_small", "jpeg_large", "png_alpha", "png_palette", "jpeg_cmyk"]


def photo_like(i: int, size: tuple[int, int]) -> Image.Image:
    noise = np.random.default_rng(i).normal(0, 6, (size[1], size[0], 3))
    return Image.fromarray(np.clip(np.asarray(synthetic_image(i, size), float) + noise, 0, 255).astype(np.uint8))


def make_set(n: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        kind = KINDS[i % len(KINDS)]
        img = photo_like(i, (640, 480) if kind == "jpeg_small" else (1280, 960))
        buf = io.BytesIO()
        if kind in ("jpeg_small", "jpeg_large"):
            img.save(buf, "JPEG", quality=90)
        elif kind == "jpeg_cmyk":
            img.convert("CMYK").save(buf, "JPEG", quality=90)
        elif kind == "png_alpha":
            img.convert("RGBA").save(buf, "PNG")
        else:
            img.convert("P", palette=Image.ADAPTIVE).save(buf, "PNG")
        out.append((kind, buf.getvalue()))
    return out


def bare_pil(data: bytes) -> tuple[bytes, Image.Image | None]:
    """The same output as normalize_image (for these inputs) in the fewest PIL calls; also the
    decoded pixels when the bytes were kept."""
    img = Image.open(io.BytesIO(data))
    img.load()
    if img.format == "JPEG" and img.mode == "RGB" and max(img.size) <= MAX_SIDE and not img.info.get("progressive"):
        return data, img
    if img.mode == "RGBA" or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.new("RGB", rgba.size, (255, 255, 255))
        img.paste(rgba, mask=rgba.split()[-1])
    elif img.mode != "RGB":
        img = img.convert("RGB")
    if max(img.size) > MAX_SIDE:
        scale = MAX_SIDE / max(img.size)
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95, optimize=False, progressive=False)
    return buf.getvalue(), None


def ours_norm(datas, policy):
    return [normalize_image(d, "x", policy).data for d in datas]


def ours_hash(datas, policy, keep_pixels=True):
    out = []
    for d in datas:
        n = normalize_image(d, "x", policy)
        m = Media("image", 0, n.data, decoded=n.decoded if keep_pixels else None)
        out.append(int(media_phashes([m])[0]))
    return out


def bare_norm(datas):
    return [bare_pil(d)[0] for d in datas]


def bare_hash(datas):
    import imagehash

    out = []
    for d in datas:
        data, pixels = bare_pil(d)
        out.append(int(str(imagehash.phash(pixels if pixels is not None else Image.open(io.BytesIO(data)))), 16))
    return out


def timed(fn, *args, repeat: int):
    best_cpu = best_wall = float("inf")
    for _ in range(repeat):
        c, t = time.process_time(), time.perf_counter()
        out = fn(*args)
        best_cpu, best_wall = min(best_cpu, time.process_time() - c), min(best_wall, time.perf_counter() - t)
    return out, best_cpu, best_wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=None, help="the CPU to pin to (default: the last allowed)")
    args = parser.parse_args()
    cpu = sorted(os.sched_getaffinity(0))[-1] if args.cpu is None else args.cpu
    os.sched_setaffinity(0, {cpu})
    images = make_set(args.images)
    policy = ImagePolicy(max_side=MAX_SIDE)
    print(f"pinned to CPU {cpu}; best of {args.repeat} runs; CPU ms per image")
    print(f"\n{'set':<12}{'images':>7}{'KB':>6}{'ours':>8}{'bare PIL':>10}{'CPU ratio':>10}{'wall ratio':>11}"
          "  same bytes")  # fmt: skip
    for kind in [*KINDS, "all"]:
        subset = [d for k, d in images if kind in ("all", k)]
        kb = sum(map(len, subset)) / len(subset) / 1024
        mine, oc, ow = timed(ours_norm, subset, policy, repeat=args.repeat)
        base, bc, bw = timed(bare_norm, subset, repeat=args.repeat)
        ms = 1000 / len(subset)
        print(f"{kind:<12}{len(subset):>7}{kb:>6.0f}{oc * ms:>8.2f}{bc * ms:>10.2f}{bc / oc:>10.2f}{bw / ow:>11.2f}"
              f"  {mine == base}")  # fmt: skip
    print(f"\n{'set':<12}{'images':>7}{'ours':>8}{'before':>8}{'bare PIL+imagehash':>20}{'CPU ratio':>10}"
          f"{'wall ratio':>11}{'before/ours':>12}  same hashes")  # fmt: skip
    for kind in [*KINDS, "all"]:
        subset = [d for k, d in images if kind in ("all", k)]
        mine, oc, ow = timed(ours_hash, subset, policy, repeat=args.repeat)
        old, pc, _ = timed(ours_hash, subset, policy, False, repeat=args.repeat)
        base, bc, bw = timed(bare_hash, subset, repeat=args.repeat)
        ms = 1000 / len(subset)
        print(f"{kind:<12}{len(subset):>7}{oc * ms:>8.2f}{pc * ms:>8.2f}{bc * ms:>20.2f}{bc / oc:>10.2f}"
              f"{bw / ow:>11.2f}{pc / oc:>12.2f}  {mine == base == old}")  # fmt: skip


if __name__ == "__main__":
    main()
