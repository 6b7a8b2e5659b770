"""Scale: build synthetic corpora of N records through the real executor and watch memory and time.

For each N the script writes a corpus in three real sources' layouts — NLVR2 (JSON lines, image
pairs), the LLaVA-1.5 mix (one JSON list, anyres images) and VidSTG (annotations + VidOR
trajectories, ST videos) — whose records reuse a small pool of media files (so disk stays small)
but whose text differs (so exact dedup keeps them). It then runs ``m4 build`` in a child process
and prints one line per N::

    records=N seconds=S records_per_s=R driver_peak_rss_mb=D worker_peak_rss_mb=W shard_bytes_per_sample=B

``driver_peak_rss_mb`` is the build driver's own peak (VmHWM, read by the driver at its end and
written to the manifest); ``worker_peak_rss_mb`` the largest Ray worker seen by a sampler that
polls the process table every 0.2 s. The last lines compare the largest N with the one before
it: wall time per record and driver peak (the targets: within 1.2x and 1.3x). With several
``--num-cpus`` values each N is built once per value and the scaling efficiency printed
((rate at the most CPUs / rate at the fewest) / CPU ratio; target >= 90%); ``--mix`` sets the
shares of the three sources (e.g. ``0 0 1``: ST video samples only, a per-media-type rate).

    python benchmarks/scale.py --records 10000 100000 1000000 --media reference
    python benchmarks/scale.py --records 20000 --num-cpus 1 2
    python benchmarks/scale.py --records 5000 --mix 0 0 1 --media clip
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from m4_pipeline.synthetic import synthetic_image, write_video

WORDS = (
    "red blue green round square small large left right two three shapes boxes circle image picture "
    "contains shows more fewer exactly least most top bottom middle edge corner beside above below"
).split()
POOL_IMAGES = 64
POOL_VIDEOS = 4


def sentence(rng: random.Random, n: int = 12) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def write_pools(root: Path) -> None:
    """The media every record reuses: NLVR2 pairs, mix images, VidSTG videos with VidOR files."""
    nl = root / "nlvr2" / "images" / "train" / "0"
    nl.mkdir(parents=True, exist_ok=True)
    for i in range(POOL_IMAGES):
        for k in (0, 1):
            synthetic_image(10_000 + 2 * i + k, (96, 64)).save(nl / f"train-{i}-0-img{k}.png")
    mix = root / "mix" / "coco" / "train2017"
    mix.mkdir(parents=True, exist_ok=True)
    for i in range(POOL_IMAGES):
        synthetic_image(20_000 + i, (128, 96)).save(mix / f"{i:012d}.jpg", quality=90)
    for v in range(POOL_VIDEOS):
        vid = f"{5_000_000 + v}"
        write_video(
            root / "vidstg" / "vidor" / "video" / "0000" / f"{vid}.mp4", seed=v, num_frames=120, fps=30, size=(640, 360)
        )  # a 360p source: clips are scaled to max_side 384
        box = lambda i: {"xmin": i % 100, "ymin": 20, "xmax": i % 100 + 24, "ymax": 44}  # noqa: E731
        ann = {"video_id": vid, "video_path": f"0000/{vid}.mp4", "frame_count": 120, "fps": 30, "width": 640,
               "height": 360, "trajectories": [[{"tid": 0, "bbox": box(i)}] for i in range(120)]}  # fmt: skip
        path = root / "vidstg" / "vidor" / "annotation" / "training" / "0000" / f"{vid}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(ann))


MIX = (0.45, 0.45, 0.10)  # shares of NLVR2 lines, mix entries and VidSTG sentences


def write_corpus(root: Path, n: int, seed: int = 0, mix: tuple[float, float, float] = MIX) -> dict[str, int]:
    """``n`` records: by default 45% NLVR2, 45% mix, 10% VidSTG sentences."""
    rng = random.Random(seed)
    total = sum(mix)
    counts = {"nlvr2": int(n * mix[0] / total), "mix": int(n * mix[1] / total)}
    counts["vidstg"] = n - counts["nlvr2"] - counts["mix"]
    (root / "nlvr2" / "data").mkdir(parents=True, exist_ok=True)
    with open(root / "nlvr2" / "data" / "train.json", "w") as fh:
        for i in range(counts["nlvr2"]):
            pair = i % POOL_IMAGES
            fh.write(json.dumps({"identifier": f"train-{pair}-0-{i}", "sentence": sentence(rng),
                                 "label": rng.choice(("True", "False")), "directory": 0}) + "\n")  # fmt: skip
    with open(root / "mix" / "llava_v1_5_mix665k.json", "w") as fh:
        fh.write("[")
        for i in range(counts["mix"]):
            item = {"id": f"{i:09d}", "image": f"coco/train2017/{i % POOL_IMAGES:012d}.jpg",
                    "conversations": [{"from": "human", "value": "<image>\n" + sentence(rng)},
                                      {"from": "gpt", "value": sentence(rng, 20)}]}  # fmt: skip
            fh.write(("," if i else "") + json.dumps(item))
        fh.write("]")
    entries = []
    for i in range((counts["vidstg"] + 1) // 2):  # two sentences per entry
        vid = f"{5_000_000 + i % POOL_VIDEOS}"
        s = rng.randrange(0, 40)
        entries.append({"vid": vid, "frame_count": 120, "fps": 30, "width": 640, "height": 360,
                        "used_segment": {"begin_fid": s, "end_fid": 120}, "temporal_gt": {"begin_fid": s + 10,
                        "end_fid": s + 60}, "captions": [{"description": sentence(rng, 8), "target_id": 0}],
                        "questions": [{"description": sentence(rng, 8), "target_id": 0}]})  # fmt: skip
    (root / "vidstg" / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "vidstg" / "annotations" / "train_annotations.json").write_text(json.dumps(entries))
    return counts


def recipe_text(media: str, per_unit: int, counts: dict[str, int]) -> str:
    sources = {"nlvr2": "{name: nlvr2, adapter: nlvr2, path: nlvr2}",
               "mix": "{name: mix, adapter: llava_mix, path: mix}",
               "vidstg": f"{{name: vidstg, adapter: vidstg, path: vidstg, media: {media}, "
                         f"sampling: 'first:{counts['vidstg']}'}}"}  # fmt: skip
    lines = "".join(f"  - {block}\n" for name, block in sources.items() if counts[name])
    return f"""name: scale
version: "1"
output: {{shard_max_samples: 2000, shard_max_bytes: 512MB, records_per_unit: {per_unit}}}
dedup: {{exact: true}}
sources:
{lines}"""


class WorkerPeak(threading.Thread):
    """The largest resident set of any Ray worker process, sampled."""

    def __init__(self, interval: float = 0.2):
        super().__init__(daemon=True)
        self.interval, self.peak, self.stop = interval, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for p in psutil.process_iter(["name", "cmdline", "memory_info"]):
                try:
                    cmd = " ".join(p.info["cmdline"] or [])
                    if "default_worker.py" in cmd or (p.info["name"] or "").startswith("ray::"):
                        self.peak = max(self.peak, p.info["memory_info"].rss)
                except (psutil.Error, TypeError):
                    continue
            self.stop.wait(self.interval)


def run(n: int, media: str, per_unit: int, workdir: Path, num_cpus: int | None, mix=MIX) -> dict:
    root = workdir / f"n{n}-c{num_cpus or 0}"
    src, out = root / "sources", root / "shards"
    write_pools(src)
    counts = write_corpus(src, n, mix=mix)
    (root / "recipe.yaml").write_text(recipe_text(media, per_unit, counts))
    cmd = [sys.executable, "-m", "m4_pipeline.cli", "build", str(root / "recipe.yaml"), "--sources", str(src),
           "--out", str(out), "-q"] + (["--num-cpus", str(num_cpus)] if num_cpus else [])  # fmt: skip
    sampler = WorkerPeak()
    sampler.start()
    started = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.time() - started
    sampler.stop.set()
    if done.returncode:
        raise SystemExit(f"build of {n} records failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    manifest = json.loads((out / "manifest.json").read_text())
    st = manifest["sources"].get("vidstg", {"written": 0})
    all_bytes = sum(s["bytes"] for s in manifest["shards"])
    written = manifest["totals"]["written"]
    return {
        "records": n, "seconds": seconds, "records_per_s": n / seconds,
        "driver_peak_rss_mb": manifest.get("driver_peak_rss_mb", float("nan")),
        "worker_peak_rss_mb": sampler.peak / 2**20,
        "shard_bytes_per_sample": all_bytes / max(1, written),
        "st": {k: v / max(1, st["written"]) for k, v in st_sizes(out, "vidstg-").items()},
        "num_cpus": num_cpus or os.cpu_count(), "phases": manifest.get("phase_seconds", {}),
        "st_written": st["written"], "written": written,
    }  # fmt: skip


def st_sizes(shards: Path, prefix: str) -> dict[str, int]:
    """Of the samples whose key starts with ``prefix``: the bytes they take in the shards (tar
    headers and padding included), and of their JSON the released record's part and the
    provenance's (the media description with the reference in it)."""
    import tarfile

    sizes = {"shard": 0, "record": 0, "provenance": 0}
    for shard in sorted(shards.glob("*.tar")):
        with tarfile.open(shard) as tf:
            for m in tf:
                if not m.name.startswith(prefix):
                    continue
                sizes["shard"] += 512 + -(-m.size // 512) * 512
                if m.name.endswith(".json"):
                    doc = json.loads(tf.extractfile(m).read())
                    prov = len(json.dumps(doc.pop("provenance", {}), separators=(",", ":")))
                    sizes["provenance"] += prov
                    sizes["record"] += m.size - prov
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--media", choices=["reference", "clip", "frames"], default="reference")
    parser.add_argument("--records-per-unit", type=int, default=512)
    parser.add_argument(
        "--num-cpus",
        type=int,
        nargs="+",
        default=[None],
        help="Ray CPUs; several values build each N once per value and print the scaling",
    )
    parser.add_argument(
        "--mix",
        type=float,
        nargs=3,
        default=list(MIX),
        metavar=("NLVR2", "MIX", "VIDSTG"),
        help="shares of the three sources (default 0.45 0.45 0.10)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the corpora and shards (in the temp folder)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="m4scale-"))
    results = []
    try:
        for n, cpus in [(n, c) for n in args.records for c in args.num_cpus]:
            r = run(n, args.media, args.records_per_unit, workdir, cpus, tuple(args.mix))
            results.append(r)
            print(f"records={r['records']} seconds={r['seconds']:.1f} records_per_s={r['records_per_s']:.1f} "
                  f"driver_peak_rss_mb={r['driver_peak_rss_mb']:.0f} worker_peak_rss_mb={r['worker_peak_rss_mb']:.0f} "
                  f"shard_bytes_per_sample={r['shard_bytes_per_sample']:.0f}", flush=True)  # fmt: skip
            print(f"  on {r['num_cpus']} Ray CPUs; ST video samples (STVG, {args.media}): {r['st_written']} written; "
                  f"per sample "
                  f"{r['st']['shard']:.0f} shard bytes, of its JSON {r['st']['record']:.0f} the released record "
                  f"and {r['st']['provenance']:.0f} the provenance (media description included)",
                  flush=True)  # fmt: skip
            print("  phases (s): " + " ".join(f"{k}={v:.1f}" for k, v in r["phases"].items()), flush=True)
            if not args.keep:
                shutil.rmtree(workdir / f"n{n}-c{cpus or 0}", ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    by_cpus = sorted({r["num_cpus"] for r in results})
    for n in args.records:
        rates = {r["num_cpus"]: r["records_per_s"] for r in results if r["records"] == n}
        if len(rates) >= 2:
            lo, hi = min(rates), max(rates)
            eff = (rates[hi] / rates[lo]) / (hi / lo)
            print(
                f"scaling at {n} records, {lo} -> {hi} CPUs: {rates[lo]:.1f} -> {rates[hi]:.1f} records/s, "
                f"efficiency {eff:.0%} (target >= 90%)"
            )
    sizes = [r for r in results if r["num_cpus"] == by_cpus[-1]]
    if len(sizes) >= 2:
        a, b = sizes[-2], sizes[-1]
        per = (b["seconds"] / b["records"]) / (a["seconds"] / a["records"])
        rss = b["driver_peak_rss_mb"] / a["driver_peak_rss_mb"]
        print(f"wall time per record, {b['records']} vs {a['records']}: {per:.2f}x (target <= 1.2x)")
        print(
            f"driver peak RSS, {b['records']} vs {a['records']}: {rss:.2f}x (target <= 1.3x); "
            f"at {b['records']}: {b['driver_peak_rss_mb']:.0f} MB (target < 2048)"
        )
    print(f"cores: {os.cpu_count()}; media: {args.media}; mix: {args.mix}; records per unit: {args.records_per_unit}")


if __name__ == "__main__":
    main()
