"""The Ray Data executor: the only module that knows Ray.

    plan units (driver: list records, sample)          -> work units
    read -> normalize -> media -> validate -> stage    (Ray Data flat_map, one task per unit)
    exact dedup + shard plan (driver, small rows only)
    write shards                                       (Ray Data map, one task per shard)
    index, quarantine table, dedup report, manifest    (driver, index last)

Media bytes never pass through the driver: workers stage them in tar fragments and the shard
writers copy them from there, so memory stays bounded whatever the corpus size. Shard content
depends only on the sorted keys, never on scheduling, so the output is deterministic.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from pathlib import Path

from . import __version__
from .process import account, num_samples_by_dataset, plan_units, process_unit, resolve_duplicates
from .recipe import Recipe
from .writer import ShardPlan, dump_json, plan_shards, write_shard

log = logging.getLogger(__name__)


def init_ray(address: str | None = None, num_cpus: int | None = None, temp_dir: str | None = None):
    """Join ``address`` (or ``RAY_ADDRESS``) if given, else start an embedded local Ray."""
    import ray

    if ray.is_initialized():
        return ray
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    if address:
        import m4_pipeline

        # Ship this package to the cluster's workers (they may not have it installed).
        kwargs["runtime_env"] = {"py_modules": [str(Path(m4_pipeline.__file__).parent)]}
        ray.init(address=address, **kwargs)
    else:
        if temp_dir:
            kwargs["_temp_dir"] = temp_dir
        ray.init(num_cpus=num_cpus, **kwargs)
    return ray


def run_build(
    recipe: Recipe,
    sources_dir: str | Path,
    out_dir: str | Path,
    *,
    ray_address: str | None = None,
    num_cpus: int | None = None,
    progress: bool = True,
) -> dict:
    """Build the recipe's shards into ``out_dir``; return the run manifest."""
    ray = init_ray(ray_address, num_cpus)
    from ray.data import DataContext
    from tqdm import tqdm

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.execution_options.preserve_order = False
    ctx.execution_options.verbose_progress = False

    started = time.time()
    out_dir, sources_dir = Path(out_dir).resolve(), Path(sources_dir).resolve()
    staging = out_dir / "_staging"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    for old in out_dir.glob("*.tar"):
        old.unlink()

    units, listing = plan_units(recipe, sources_dir)
    total = sum(v["selected"] for v in listing.values())
    log.info("%d records in %d work units from %d sources", total, len(units), len(listing))

    rows: list[dict] = []
    if units:
        name, version = recipe.name, recipe.version

        def stage(unit: dict) -> list[dict]:
            return process_unit(unit, staging, recipe_name=name, recipe_version=version)

        ds = ray.data.from_items(units, override_num_blocks=len(units)).flat_map(stage, num_cpus=1)
        with tqdm(total=total, desc="samples", unit="rec", disable=not progress) as bar:
            for row in ds.iter_rows():
                rows.append(dict(row))
                bar.update(1)

    resolve_duplicates(rows, exact=recipe.dedup.exact)
    stats = account(rows, listing)
    kept = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: r["key"])
    num_samples = num_samples_by_dataset(kept, recipe)
    plans = plan_shards(
        kept,
        prefix=recipe.name,
        max_samples=recipe.output.shard_max_samples,
        max_bytes=recipe.output.shard_max_bytes,
    )
    shards = []
    if plans:
        plan_rows = [{"plan": json.dumps(dataclasses.asdict(p))} for p in plans]

        def write(row: dict) -> dict:
            return write_shard(ShardPlan(**json.loads(row["plan"])), out_dir, staging, num_samples)

        ds = ray.data.from_items(plan_rows, override_num_blocks=len(plan_rows)).map(write, num_cpus=1)
        with tqdm(total=len(plans), desc="shards", unit="shard", disable=not progress) as bar:
            for row in ds.iter_rows():
                shards.append(dict(row))
                bar.update(1)
    shards.sort(key=lambda s: s["name"])
    manifest = _write_reports(out_dir, recipe, rows, stats, shards, started)
    shutil.rmtree(staging)
    return manifest


def _write_reports(out_dir: Path, recipe: Recipe, rows, stats, shards, started) -> dict:
    order = sorted(rows, key=lambda r: (r["source"], r["ordinal"]))
    quarantine = [
        {k: r[k] for k in ("source", "source_file", "locator", "key", "reason", "detail")}
        for r in order if r["status"] == "quarantined"
    ]  # fmt: skip
    duplicates = [
        {"key": r["key"], "duplicate_of": r["duplicate_of"], "reason": r["reason"], "fingerprint": r["fingerprint"],
         "source": r["source"], "locator": r["locator"]}
        for r in order if r["status"] == "duplicate"
    ]  # fmt: skip
    (out_dir / "quarantine.jsonl").write_bytes(b"".join(dump_json(q) + b"\n" for q in quarantine))
    (out_dir / "duplicates.jsonl").write_bytes(b"".join(dump_json(d) + b"\n" for d in duplicates))
    totals = {
        "read": sum(s["read"] for s in stats.values()),
        "written": sum(s["written"] for s in stats.values()),
        "quarantined": sum(sum(s["quarantined"].values()) for s in stats.values()),
        "duplicates": sum(s["duplicates"] for s in stats.values()),
    }
    wall = time.time() - started
    manifest = {
        "recipe": recipe.name,
        "recipe_version": recipe.version,
        "pipeline_version": __version__,
        "totals": totals,
        "sources": stats,
        "shards": shards,
        "wall_seconds": round(wall, 3),
        "samples_per_second": round(totals["written"] / wall, 3) if wall > 0 else None,
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    index = {
        "shards": [{k: s[k] for k in ("name", "samples", "bytes", "sha256", "first_key", "last_key")} for s in shards]
    }
    (out_dir / "index.json").write_text(json.dumps(index, indent=2) + "\n")  # written last
    return manifest
