"""Shard writing vs plain tarfile, and end-to-end build throughput on 1 vs 2 CPUs.

    .venv/bin/python benchmarks/scaling.py [--scale 16] [--records-per-unit 8]

1. Writes the same members (taken from a built demo corpus) with our writer (deterministic
   headers, temp name + fsync + rename) and with a plain ``tarfile`` loop; ratio = our MB/s over
   tarfile's (target >= 0.9).
2. Builds a scaled miniature corpus in two fresh processes, one with a local Ray of 1 CPU and
   one with 2 CPUs; each process builds once to warm its workers, then times a second build.
   Scaling efficiency = (2-CPU rate / 1-CPU rate) / 2 (target >= 90%).
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

CHILD = """
import dataclasses, json, sys, tempfile, time
sys.path.insert(0, {root!r})
from m4_pipeline.executor import init_ray, run_build
from m4_pipeline.recipe import load_recipe
recipe = load_recipe({recipe!r})
recipe = dataclasses.replace(recipe, output=dataclasses.replace(recipe.output, records_per_unit={rpu}))
init_ray(num_cpus={cpus}, temp_dir=tempfile.mkdtemp(prefix="/tmp/m4ray-"))
run_build(recipe, {sources!r}, {out!r} + "/warm", progress=False)
t = time.perf_counter()
m = run_build(recipe, {sources!r}, {out!r} + "/timed", progress=False)
print(json.dumps({{"written": m["totals"]["written"], "seconds": time.perf_counter() - t}}))
"""


def writer_benchmark(members: list[tuple[str, bytes]], work: Path) -> tuple[float, float]:
    from m4_pipeline.writer import write_tar

    total = sum(len(d) for _, d in members) / 1e6
    rates = []
    for durable in (True, False):
        t = time.perf_counter()
        for i in range(3):
            write_tar(work / f"ours{i}.tar", members, durable=durable)
        rates.append(3 * total / (time.perf_counter() - t))
    t = time.perf_counter()
    for i in range(3):
        with tarfile.open(work / f"plain{i}.tar", "w") as tf:
            for name, data in members:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    plain = 3 * total / (time.perf_counter() - t)
    return rates[0], rates[1], plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, default=16)
    parser.add_argument("--records-per-unit", type=int, default=8)
    args = parser.parse_args()
    from demo_throughput import write_corpus

    work = Path(tempfile.mkdtemp(prefix="m4scale-"))
    write_corpus(work / "sources", args.scale)
    results = {}
    for cpus in (1, 2):
        code = CHILD.format(root=str(ROOT), recipe=str(ROOT / "recipes" / "demo.yaml"), rpu=args.records_per_unit,
                            cpus=cpus, sources=str(work / "sources"), out=str(work / f"out{cpus}"))  # fmt: skip
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        results[cpus] = json.loads(proc.stdout.strip().splitlines()[-1])
    members = []
    for shard in sorted((work / "out2" / "timed").glob("*.tar")):
        with tarfile.open(shard) as tf:
            members += [(m.name, tf.extractfile(m).read()) for m in tf.getmembers()]
    ours, ours_no_fsync, plain = writer_benchmark(members, work)
    mb = sum(len(d) for _, d in members) / 1e6
    print(f"shard writing: {len(members)} members, {mb:.1f} MB, written 3 times each")
    print(f"{'writer':<34}{'MB/s':>9}{'ratio':>8}")
    print(f"{'plain tarfile loop (baseline)':<34}{plain:>9.1f}{1.0:>8.2f}")
    print(f"{'m4 write_tar (fsync, rename)':<34}{ours:>9.1f}{ours / plain:>8.2f}")
    print(f"{'m4 write_tar (rename only)':<34}{ours_no_fsync:>9.1f}{ours_no_fsync / plain:>8.2f}")
    print(f"\nend to end: scale {args.scale}, {args.records_per_unit} records per unit, warm workers")
    print(f"{'local Ray':<12}{'samples':>9}{'seconds':>9}{'samples/s':>11}")
    for cpus, r in results.items():
        print(f"{f'{cpus} CPU':<12}{r['written']:>9}{r['seconds']:>9.2f}{r['written'] / r['seconds']:>11.2f}")
    rate = {c: r["written"] / r["seconds"] for c, r in results.items()}
    print(f"speed-up {rate[2] / rate[1]:.2f}x, scaling efficiency {rate[2] / rate[1] / 2:.0%}")


if __name__ == "__main__":
    main()
