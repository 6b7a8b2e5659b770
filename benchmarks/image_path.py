"""The image path (normalize_image) vs a bare PIL decode -> resize -> encode loop on the same files.

    .venv/bin/python benchmarks/image_path.py [--images 200]

Makes a mixed set: JPEGs within the size cap (which our path keeps byte for byte), larger JPEGs,
PNGs with alpha, palette PNGs and CMYK JPEGs; both paths produce RGB JPEG bytes with the longer
side capped at 768. Ratio = our throughput / the bare loop's (target >= 0.8).
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from m4_pipeline.media.images import ImagePolicy, normalize_image  # noqa: E402
from m4_pipeline.synthetic import synthetic_image  # noqa: E402

MAX_SIDE = 768


def make_set(n: int) -> list[tuple[str, bytes]]:
    out = []
    for i in range(n):
        kind = ["jpeg_small", "jpeg_large", "png_alpha", "png_palette", "jpeg_cmyk"][i % 5]
        size = (640, 480) if kind == "jpeg_small" else (1280, 960)
        img = synthetic_image(i, size)
        buf = io.BytesIO()
        if kind.startswith("jpeg") and kind != "jpeg_cmyk":
            img.save(buf, "JPEG", quality=90)
        elif kind == "jpeg_cmyk":
            img.convert("CMYK").save(buf, "JPEG", quality=90)
        elif kind == "png_alpha":
            img.convert("RGBA").save(buf, "PNG")
        else:
            img.convert("P", palette=Image.ADAPTIVE).save(buf, "PNG")
        out.append((kind, buf.getvalue()))
    return out


def bare_pil(data: bytes) -> bytes:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    if max(img.size) > MAX_SIDE:
        scale = MAX_SIDE / max(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95)
    return buf.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    images = make_set(args.images)
    policy = ImagePolicy(max_side=MAX_SIDE)
    print(f"{'set':<14}{'images':>7}{'ours img/s':>12}{'bare PIL img/s':>16}{'ratio':>7}")
    kinds = sorted({k for k, _ in images})
    for kind in [*kinds, "all"]:
        subset = [d for k, d in images if kind in ("all", k)]
        t = time.perf_counter()
        for d in subset:
            normalize_image(d, kind, policy)
        ours = len(subset) / (time.perf_counter() - t)
        t = time.perf_counter()
        for d in subset:
            bare_pil(d)
        bare = len(subset) / (time.perf_counter() - t)
        print(f"{kind:<14}{len(subset):>7}{ours:>12.1f}{bare:>16.1f}{ours / bare:>7.2f}")


if __name__ == "__main__":
    main()
