"""Loader throughput of ``m4 check-train``'s input pipeline against what one H100 would consume.

    .venv/bin/python benchmarks/loader_throughput.py [--samples 96] [--workers 0 1 2]

Writes multi-image M4 shards itself (2-8 JPEG images of 512x384 per sample, through
``m4_pipeline.writer``), then times the real loader (webdataset read, JPEG decode, LlavaProcessor
at the published 384 px / 729 tokens per image, ChatML tokenization and masks, token checks) with
several torch DataLoader worker counts, and prints samples/s against the assumed consumption
rate of one H100 training llava-interleave-qwen-0.5b (derivation printed with the table).
No model is built: this is the loader alone.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from m4_pipeline.formats import m4_record  # noqa: E402
from m4_pipeline.sample import Media, Provenance, Sample, Turn  # noqa: E402
from m4_pipeline.synthetic import synthetic_image  # noqa: E402
from m4_pipeline.train.loader import sample_loader  # noqa: E402
from m4_pipeline.train.models import built_in_setup  # noqa: E402
from m4_pipeline.writer import sample_members, write_tar  # noqa: E402

# --- the assumed consumption rate of one H100 (all numbers are assumptions, see derivation) ---
H100_BF16_DENSE_FLOPS = 989e12  # H100 SXM dense BF16 peak
ASSUMED_MFU = 0.40  # model FLOPs utilisation a well-tuned LLaVA trainer reaches (optimistic for 0.5B)
LM_PARAMS = 0.46e9  # Qwen1.5-0.5B, embeddings included (the untied-in-compute lm_head matmul is real work)
VISION_PARAMS = 0.40e9  # SigLIP-SO400M with 26 layers, trained too in LLaVA-NeXT-Interleave
TARGET_RATIO = 10.0


def flops_per_sample(image_tokens: float, total_tokens: float) -> float:
    """6 x params x tokens (forward + backward): every image token passes the vision tower (one
    patch each) and, like every text token, the LM. Attention's quadratic term is left out, which
    lowers the FLOPs and so raises the assumed rate (a stricter target)."""
    return 6 * (VISION_PARAMS * image_tokens + LM_PARAMS * total_tokens)


def write_shards(root: Path, samples: int, shards: int, seed: int = 0) -> list[Path]:
    rng = np.random.default_rng(seed)
    pool = []
    for i in range(24):  # distinct 512x384 JPEGs, reused across samples
        buf = io.BytesIO()
        synthetic_image(i, (512, 384)).save(buf, "JPEG", quality=90)
        pool.append(buf.getvalue())
    prov = Provenance("bench", "bench.json", "generated", "bench", "1", "bench")
    members: list[list] = [[] for _ in range(shards)]
    for n in range(samples):
        k = int(rng.integers(2, 9))
        key = f"bench-{n:06d}"
        media = [Media("image", i, pool[int(rng.integers(len(pool)))], "jpg", size=[512, 384]) for i in range(k)]
        question = "".join(f"Image {i + 1}: <image>\n" for i in range(k)) + "What changes from one image to the next?"
        answer = " ".join(["The shapes move to the right and one of them changes colour."] * 3)
        record = m4_record(n, [f"bench/{key}-{i}.jpg" for i in range(k)], dataset="Bench", question_type="open-ended")
        sample = Sample(key, "m4", [Turn("human", question), Turn("gpt", answer)], record, media, prov)
        members[n * shards // samples] += sample_members(sample)
    paths = [root / f"bench-{i:06d}.tar" for i in range(shards)]
    for path, m in zip(paths, members, strict=True):
        write_tar(path, m)
    return paths


def time_loader(paths, setups, workers: int) -> tuple[float, list]:
    started = time.perf_counter()
    items = list(sample_loader(paths, setups, max_length=32768, workers=workers))
    seconds = time.perf_counter() - started
    bad = [f for it in items for f in it.failures]
    if bad:
        raise RuntimeError(f"the benchmark shards failed the check: {bad[:3]}")
    return seconds, items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=96)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    setup = built_in_setup("m4", "full")  # the published preprocessing: 384 px, 729 tokens per image
    setups = {"m4": setup}
    work = Path(tempfile.mkdtemp(prefix="m4-loader-bench-"))
    try:
        paths = write_shards(work, args.samples, args.shards)
        time_loader(paths[:1], setups, 0)  # warm-up: imports, first-call caches
        rows = []
        for w in args.workers:
            seconds, items = time_loader(paths, setups, w)
            rows.append((w, len(items), seconds))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lengths = np.array([it.length for it in items])
    images = np.array([it.pixel_values.shape[0] for it in items])
    image_tokens = float(images.mean() * setup.tokens_per_image())
    per_sample = flops_per_sample(image_tokens, float(lengths.mean()))
    h100_rate = H100_BF16_DENSE_FLOPS * ASSUMED_MFU / per_sample
    tokens_per_s = h100_rate * lengths.mean()

    print(
        f"loader: {args.samples} samples in {args.shards} shards, {images.min()}-{images.max()} images "
        f"of 512x384 (mean {images.mean():.1f}), {lengths.mean():.0f} tokens per sample (mean; "
        f"{setup.tokens_per_image()} per image); {os.cpu_count()} CPU cores, "
        f"load average {os.getloadavg()[0]:.1f} at the end"
    )
    print("\nassumed H100 consumption (training llava-interleave-qwen-0.5b, all parts trained):")
    print(
        f"  {H100_BF16_DENSE_FLOPS / 1e12:.0f} TFLOP/s BF16 dense x {ASSUMED_MFU:.0%} MFU = "
        f"{H100_BF16_DENSE_FLOPS * ASSUMED_MFU / 1e12:.0f} TFLOP/s"
    )
    print(
        f"  FLOPs/sample = 6 x ({VISION_PARAMS / 1e9:.2f}B vision x {image_tokens:.0f} image tokens + "
        f"{LM_PARAMS / 1e9:.2f}B LM x {lengths.mean():.0f} tokens) = {per_sample / 1e12:.1f} TFLOP"
    )
    print(
        f"  => {h100_rate:.1f} samples/s/GPU ({tokens_per_s / 1e3:.0f}K tokens/s/GPU); "
        f"target {TARGET_RATIO:.0f}x = {TARGET_RATIO * h100_rate:.0f} samples/s"
    )
    print(f"\n{'DataLoader workers':<20}{'samples':>9}{'seconds':>9}{'samples/s':>11}{'x H100 rate':>13}")
    for w, n, s in rows:
        print(f"{w:<20}{n:>9}{s:>9.2f}{n / s:>11.1f}{n / s / h100_rate:>12.2f}x")
    best = max(n / s for _, n, s in rows)
    per_worker = max(n / s / max(w, 1) for w, n, s in rows)  # one loader process (w = 0 or 1) at its best
    needed = math.ceil(TARGET_RATIO * h100_rate / per_worker)
    verdict = "meets" if best >= TARGET_RATIO * h100_rate else "misses"
    print(
        f"\nbest {best:.1f} samples/s {verdict} the {TARGET_RATIO:.0f}x target on this machine; at "
        f"{per_worker:.1f} samples/s per loader process, {TARGET_RATIO:.0f}x needs about {needed} "
        "loader cores per GPU (linear scaling assumed, not measured)"
    )


if __name__ == "__main__":
    main()
