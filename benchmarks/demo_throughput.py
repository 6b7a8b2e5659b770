"""End-to-end build throughput: the Ray executor vs the same stages run serially in one process.

    .venv/bin/python benchmarks/demo_throughput.py [--scale 4]

Writes a scaled-up miniature corpus of every source, then builds the demo recipe (a) serially
in-process (the baseline: plan, process every unit, dedup, write, no Ray) and (b) with
``run_build`` on a local Ray with 2 CPUs, twice: with cold worker processes (imports, renderer
windows and decode caches start empty) and again with warm ones. Prints samples/s and the ratio
to the baseline. Ray start-up time is measured separately and not counted.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

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
    sizes = {
        "nlvr2": {"pairs_per_split": 3 * scale},
        "nextqa": {"videos": 3 * scale},
        "scanqa": {"scenes": 2 * scale},
        "llava_mix": {},
        "vidstg": {"videos": 2 * scale},
    }
    for name, kwargs in sizes.items():
        importlib.import_module(f"m4_pipeline.adapters.{name}").write_miniature(root / name, **kwargs)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=int, default=4, help="corpus size multiplier")
    parser.add_argument("--records-per-unit", type=int, default=16, help="records per parallel work unit")
    args = parser.parse_args()
    recipe = load_recipe(RECIPE)
    recipe = dataclasses.replace(
        recipe, output=dataclasses.replace(recipe.output, records_per_unit=args.records_per_unit)
    )
    work = Path(tempfile.mkdtemp(prefix="m4bench-"))
    try:
        t = time.perf_counter()
        write_corpus(work / "sources", args.scale)
        corpus_s = time.perf_counter() - t

        t = time.perf_counter()
        n_serial = serial_build(recipe, work / "sources", work / "serial")
        serial_s = time.perf_counter() - t

        t = time.perf_counter()
        init_ray(num_cpus=2, temp_dir=tempfile.mkdtemp(prefix="/tmp/m4ray-"))
        ray_init_s = time.perf_counter() - t
        runs = []
        for label in ("ray executor, 2 CPUs, cold workers", "ray executor, 2 CPUs, warm workers"):
            t = time.perf_counter()
            manifest = run_build(recipe, work / "sources", work / "ray", num_cpus=2, progress=False)
            runs.append((label, manifest["totals"]["written"], time.perf_counter() - t))
        same = sorted(p.read_bytes() for p in (work / "serial").glob("*.tar")) == sorted(
            p.read_bytes() for p in (work / "ray").glob("*.tar")
        )
        print(
            f"corpus: scale {args.scale}, {manifest['totals']['read']} records, {args.records_per_unit} per unit, "
            f"written in {corpus_s:.1f} s; ray init {ray_init_s:.1f} s (not counted)"
        )
        print(f"{'run':<40}{'samples':>9}{'seconds':>9}{'samples/s':>11}{'ratio':>7}")
        print(
            f"{'serial, one process (baseline)':<40}{n_serial:>9}{serial_s:>9.2f}"
            f"{n_serial / serial_s:>11.2f}{1.0:>7.2f}"
        )
        for label, n, secs in runs:
            print(f"{label:<40}{n:>9}{secs:>9.2f}{n / secs:>11.2f}{serial_s / secs:>7.2f}")
        print(f"shards byte-identical between serial and Ray: {same}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
