"""End-to-end build throughput per core: the Ray executor vs the same stages serially in one process.

    .venv/bin/python benchmarks/demo_throughput.py [--scale 4] [--repeat 2] [--cpus 0 1]

Writes ``--scale`` copies of every demo source's miniature (each copy its own seed, so its own
media), then builds the demo recipe over them

- serially in this process (plan, process every unit, dedup, write; no Ray), pinned to one CPU,
  once cold (imports, renderer windows and decode caches start empty) and then warm: the warm
  run is the baseline;
- with ``run_build`` on a local Ray of 1 CPU pinned to one core, then of 2 CPUs pinned to two
  cores (every Ray process inherits the pinning), once cold and then warm.

CPU seconds count this process and every process it started (Ray's GCS, raylet and workers,
live or reaped), from psutil. Ratios compare per core: (samples/s per core) / (serial warm
samples/s), and serial CPU seconds / Ray CPU seconds for the same samples (1.0: Ray costs no
extra CPU). Ray start-up is not counted. A last table gives fixed costs that decide how the
executor should be shaped: one small Ray Data dataset run end to end, and one no-op Ray task.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from m4_pipeline.executor import init_ray, run_build  # noqa: E402
from m4_pipeline.process import (  # noqa: E402
    apply_near_duplicates,
    dedup_provenance,
    num_samples_by_dataset,
    plan_units,
    process_unit,
    resolve_duplicates,
)
from m4_pipeline.recipe import load_recipe  # noqa: E402
from m4_pipeline.writer import plan_shards, write_shard  # noqa: E402

RECIPE = Path(__file__).resolve().parent.parent / "recipes" / "demo.yaml"


def write_corpus(root: Path, scale: int) -> None:
    """``scale`` copies of every demo source's miniature, copy k written with seed k into
    ``<source>_k`` (different media, the same layout; copy 0 in ``<source>``, as the demo
    recipe expects)."""
    from m4_pipeline.adapters import get_adapter

    for src in load_recipe(RECIPE).sources:
        for k in range(scale):
            get_adapter(src.adapter).write_miniature(root / _copy(src.path, k), seed=k)


def _copy(name: str, k: int) -> str:
    return f"{name}_{k}" if k else name


def scaled_recipe(scale: int, records_per_unit: int):
    """The demo recipe over the ``scale`` copies written by :func:`write_corpus`."""
    recipe = load_recipe(RECIPE)
    sources = [dataclasses.replace(src, name=_copy(src.name, k), path=_copy(src.path, k))
               for k in range(scale) for src in recipe.sources]  # fmt: skip
    output = dataclasses.replace(recipe.output, records_per_unit=records_per_unit)
    return dataclasses.replace(recipe, sources=sources, output=output)


def serial_build(recipe, sources: Path, out: Path) -> int:
    """The baseline: every stage of run_build, in this process, no Ray."""
    staging = out / "_staging"
    units, _ = plan_units(recipe, sources)
    near = recipe.dedup.near_config() if recipe.dedup.needs_signatures else None
    rows = []
    for unit in units:
        rows += process_unit(
            unit, staging, recipe_name=recipe.name, recipe_version=recipe.version, recipe_sha256=recipe.sha256,
            exact_key=recipe.dedup.exact_key, near_config=near,
        )  # fmt: skip
    resolve_duplicates(rows, exact=recipe.dedup.exact)
    if recipe.dedup.near:
        apply_near_duplicates(rows, near)
    kept = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: r["key"])
    plans = plan_shards(kept, prefix=recipe.name, max_samples=recipe.output.shard_max_samples,
                        max_bytes=recipe.output.shard_max_bytes)  # fmt: skip
    for plan in plans:
        write_shard(plan, out, staging, num_samples_by_dataset(kept, recipe), dedup_provenance(rows))
    return len(kept)


def tree_cpu_seconds() -> float:
    """CPU seconds of this process and all its descendants, live or already reaped."""
    total = 0.0
    me = psutil.Process()
    for proc in [me, *me.children(recursive=True)]:
        try:
            t = proc.cpu_times()
        except psutil.Error:  # it ended meanwhile: its time is in its parent's children_* next time
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def measure(fn):
    c, t = tree_cpu_seconds(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t, tree_cpu_seconds() - c


def shards(folder: Path) -> list[bytes]:
    return sorted(p.read_bytes() for p in folder.glob("*.tar"))


def fixed_costs(ray) -> list[tuple[str, float, float]]:
    """One small Ray Data dataset end to end, and one no-op task, each the best of 3 (warm)."""
    import ray.data

    def dataset():
        ray.data.from_items([{"x": i} for i in range(64)]).map(lambda r: r).materialize()

    @ray.remote(num_cpus=1)
    def noop():
        return None

    def task():
        ray.get(noop.remote())

    out = []
    for label, fn in (("one Ray Data dataset (64 rows, map)", dataset), ("one no-op Ray task", task)):
        fn()  # warm
        runs = [measure(fn) for _ in range(3)]
        out.append((label, min(r[1] for r in runs), min(r[2] for r in runs)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=4, help="corpus size multiplier")
    parser.add_argument("--records-per-unit", type=int, default=16, help="records per parallel work unit")
    parser.add_argument("--repeat", type=int, default=2, help="warm runs of each configuration (best is kept)")
    parser.add_argument("--cpus", type=int, nargs=2, default=None, help="two CPUs to pin to (default: the last two)")
    args = parser.parse_args()
    cpus = args.cpus or sorted(os.sched_getaffinity(0))[-2:]
    recipe = scaled_recipe(args.scale, args.records_per_unit)
    work = Path(tempfile.mkdtemp(prefix="m4bench-"))
    rows, costs = [], []
    try:
        t = time.perf_counter()
        write_corpus(work / "sources", args.scale)
        corpus_s = time.perf_counter() - t

        os.sched_setaffinity(0, {cpus[-1]})
        serial = []
        for _ in range(1 + args.repeat):
            shutil.rmtree(work / "serial", ignore_errors=True)
            serial.append(measure(lambda: serial_build(recipe, work / "sources", work / "serial")))
        n = serial[0][0]
        rows.append(("serial, cold", 1, n, serial[0][1], serial[0][2]))
        rows.append(("serial, warm (baseline)", 1, n, min(s[1] for s in serial[1:]), min(s[2] for s in serial[1:])))
        reference = shards(work / "serial")

        same = True
        for ncpu in (1, 2):
            os.sched_setaffinity(0, set(cpus[-ncpu:]))
            ray = init_ray(num_cpus=ncpu, temp_dir=tempfile.mkdtemp(prefix="/tmp/m4ray-"))
            runs = []
            build = functools.partial(run_build, recipe, work / "sources", work / "ray", num_cpus=ncpu, progress=False)
            for _ in range(1 + args.repeat):
                shutil.rmtree(work / "ray", ignore_errors=True)
                manifest, wall, cpu = measure(build)
                runs.append((manifest["totals"]["written"], wall, cpu))
                same = same and shards(work / "ray") == reference
            rows.append((f"ray, {ncpu} CPU, cold", ncpu, *runs[0]))
            rows.append((f"ray, {ncpu} CPU, warm", ncpu, runs[1][0], min(r[1] for r in runs[1:]),
                         min(r[2] for r in runs[1:])))  # fmt: skip
            if ncpu == 2:
                costs = fixed_costs(ray)
            ray.shutdown()

        base_rate, base_cpu = rows[1][2] / rows[1][3], rows[1][4]
        print(f"corpus: scale {args.scale}, {manifest['totals']['read']} records, {args.records_per_unit} per unit, "
              f"written in {corpus_s:.1f} s; pinned to CPUs {cpus}; warm rows: best of {args.repeat}")  # fmt: skip
        print(f"{'run':<26}{'cores':>6}{'samples':>8}{'wall s':>8}{'samples/s':>10}{'per core':>9}{'CPU s':>8}"
              f"{'per-core ratio':>15}{'CPU ratio':>10}")  # fmt: skip
        for label, cores, count, wall, cpu in rows:
            rate = count / wall
            print(f"{label:<26}{cores:>6}{count:>8}{wall:>8.2f}{rate:>10.2f}{rate / cores:>9.2f}{cpu:>8.2f}"
                  f"{rate / cores / base_rate:>15.2f}{base_cpu / cpu:>10.2f}")  # fmt: skip
        print(f"shards byte-identical between serial and every Ray run: {same}")
        print(f"\n{'fixed cost (2-CPU Ray, warm)':<40}{'wall s':>8}{'CPU s':>8}")
        for label, wall, cpu in costs:
            print(f"{label:<40}{wall:>8.3f}{cpu:>8.3f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
