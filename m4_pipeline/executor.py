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
from .process import (
    account,
    apply_decontamination,
    apply_near_duplicates,
    completed_units,
    dedup_provenance,
    num_samples_by_dataset,
    plan_units,
    process_unit,
    resolve_duplicates,
)
from .recipe import Recipe
from .writer import ShardPlan, completed_shard, dump_json, plan_shards, write_shard

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


class ResumeError(RuntimeError):
    """``--resume`` on an output folder that holds no run, or a run of another recipe or input."""


OUTPUTS = ("index.json", "manifest.json", "quarantine.jsonl", "duplicates.jsonl", "near_duplicates.jsonl",
           "decontamination.jsonl")  # fmt: skip


def run_build(
    recipe: Recipe,
    sources_dir: str | Path,
    out_dir: str | Path,
    *,
    ray_address: str | None = None,
    num_cpus: int | None = None,
    max_workers: int | None = None,
    resume: bool = False,
    progress: bool = True,
) -> dict:
    """Build the recipe's shards into ``out_dir``; return the run manifest.

    Work happens in units (record chunks) and shards, each finished by a marker written after
    its output. ``resume=True`` continues an interrupted build of the same recipe and sources:
    finished units and shards are kept, the rest is redone, and the result is byte-identical to
    an uninterrupted run. ``max_workers`` caps the parallel tasks (default: all CPUs).
    """
    ray = init_ray(ray_address, num_cpus)
    from ray.data import DataContext
    from tqdm import tqdm

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.execution_options.preserve_order = False
    ctx.execution_options.verbose_progress = False
    # Per-operator reservations kept one of two CPUs idle on small machines (measured: 1.06 -> 1.74
    # tasks in flight on 2 CPUs); every stage here is CPU-bound with num_cpus=1, so share freely.
    ctx.op_resource_reservation_enabled = False

    started = time.time()
    out_dir, sources_dir = Path(out_dir).resolve(), Path(sources_dir).resolve()
    work = out_dir / "_work"
    run_info = {"recipe": recipe.name, "recipe_sha256": recipe.sha256, "sources": str(sources_dir),
                "records_per_unit": recipe.output.records_per_unit, "pipeline_version": __version__}  # fmt: skip
    _prepare(out_dir, work, run_info, resume)

    units, listing = plan_units(recipe, sources_dir)
    finished = completed_units(work)
    rows: list[dict] = [row for u in units for row in finished.get(u["unit_id"], [])]
    todo = [u for u in units if u["unit_id"] not in finished]
    total = sum(v["selected"] for v in listing.values())
    log.info("%d records in %d work units (%d already done)", total, len(units), len(units) - len(todo))
    limits = {"num_cpus": 1}
    if max_workers:
        limits["compute"] = ray.data.TaskPoolStrategy(size=max_workers)
    if todo:
        name, version, sha = recipe.name, recipe.version, recipe.sha256
        exact_key = recipe.dedup.exact_key
        near_config = recipe.dedup.near_config() if recipe.dedup.needs_signatures else None

        def stage(unit: dict) -> list[dict]:
            return process_unit(unit, work, recipe_name=name, recipe_version=version, recipe_sha256=sha,
                                exact_key=exact_key, near_config=near_config)  # fmt: skip

        ds = ray.data.from_items(todo, override_num_blocks=len(todo)).flat_map(stage, **limits)
        with tqdm(total=total, initial=len(rows), desc="samples", unit="rec", disable=not progress) as bar:
            for row in ds.iter_rows():
                rows.append(dict(row))
                bar.update(1)

    resolve_duplicates(rows, exact=recipe.dedup.exact)
    reports = _near_dedup_and_decontaminate(ray, rows, recipe, sources_dir)
    stats = account(rows, listing)
    kept = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: r["key"])
    num_samples = num_samples_by_dataset(kept, recipe)
    dedup = dedup_provenance(rows)
    plans = plan_shards(kept, prefix=recipe.name, max_samples=recipe.output.shard_max_samples,
                        max_bytes=recipe.output.shard_max_bytes)  # fmt: skip
    shards = [info for p in plans if (info := completed_shard(out_dir, work, p.name))]
    done_names = {s["name"] for s in shards}
    todo_plans = [p for p in plans if p.name not in done_names]
    if todo_plans:
        plan_rows = [{"plan": json.dumps(dataclasses.asdict(p))} for p in todo_plans]

        def write(row: dict) -> dict:
            return write_shard(ShardPlan(**json.loads(row["plan"])), out_dir, work, num_samples, dedup)

        ds = ray.data.from_items(plan_rows, override_num_blocks=len(plan_rows)).map(write, **limits)
        with tqdm(total=len(plans), initial=len(shards), desc="shards", unit="shard", disable=not progress) as bar:
            for row in ds.iter_rows():
                shards.append(dict(row))
                bar.update(1)
    shards.sort(key=lambda s: s["name"])
    manifest = _write_reports(out_dir, recipe, rows, stats, shards, started, reports)
    shutil.rmtree(work)
    for stray in out_dir.glob("*.tmp"):  # half-written shards of an interrupted run
        stray.unlink(missing_ok=True)
    return manifest


def map_shards(fn, paths: list[Path], *, ray_address: str | None = None, num_cpus: int | None = None) -> list:
    """``fn(path)`` for every shard, one Ray task each; results (JSON-ready) in the order of ``paths``."""
    ray = init_ray(ray_address, num_cpus)
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False
    items = [{"i": i, "path": str(p)} for i, p in enumerate(paths)]

    def task(row: dict) -> dict:
        return {"i": row["i"], "result": json.dumps(fn(Path(row["path"])))}

    rows = ray.data.from_items(items, override_num_blocks=len(items)).map(task, num_cpus=1).take_all()
    return [json.loads(r["result"]) for r in sorted(rows, key=lambda r: r["i"])]


def _near_dedup_and_decontaminate(ray, rows: list[dict], recipe: Recipe, sources_dir: Path) -> dict:
    """Decontaminate, then near-dedup the survivors (driver; the pHash bands run on Ray)."""
    spec = recipe.dedup
    reports: dict = {"near_duplicates": [], "decontamination": [], "decontamination_summary": {}}
    if spec.decontaminate:
        benchmarks = {name: sources_dir / path for name, path in spec.decontaminate.items()}
        found, summary = apply_decontamination(rows, benchmarks, spec.decontam_config())
        reports.update(decontamination=found, decontamination_summary=summary)
    if spec.near:
        reports["near_duplicates"] = apply_near_duplicates(
            rows,
            spec.near_config(),
            media_candidates_fn=lambda sigs, cfg: _ray_media_candidates(ray, sigs, cfg),
            text_candidates_fn=lambda sigs, cfg: _ray_text_candidates(ray, sigs, cfg),
        )
    return reports


def _pairs_by_key_on_ray(ray, records, pairs_in_group) -> set[tuple[int, int]]:
    """Shuffle ``(key, value)`` records to Ray tasks by key; each task groups its records by key
    and returns ``pairs_in_group(key, values)`` (sample index pairs). Keys and values are JSON."""
    partitions = 4 * max(1, int(ray.cluster_resources().get("CPU", 1)))
    parts: list[list] = [[] for _ in range(partitions)]
    for key, value in records:
        parts[hash(json.dumps(key)) % partitions].append([key, value])

    def task(row: dict) -> dict:
        groups: dict[str, tuple] = {}
        for key, value in json.loads(row["records"]):
            groups.setdefault(json.dumps(key), (key, []))[1].append(value)
        pairs = [pair for key, values in groups.values() if len(values) > 1 for pair in pairs_in_group(key, values)]
        return {"pairs": json.dumps(pairs)}

    todo = [{"records": json.dumps(p)} for p in parts if p]
    if not todo:
        return set()
    found = ray.data.from_items(todo, override_num_blocks=len(todo)).map(task, num_cpus=1).take_all()
    return {(min(a, b), max(a, b)) for row in found for a, b in json.loads(row["pairs"]) if a != b}


def _ray_media_candidates(ray, sigs, config) -> set[tuple[int, int]]:
    """Sample pairs sharing a close pHash: the LSH band records shuffled by band key, each
    band's pairs verified by true Hamming distance."""
    from .dedup import band_records, media_items, pairs_in_band
    from .dedup.near import media_plan

    items = [((i, slot, n), h) for i, sig in enumerate(sigs) for (_, slot, n), h in media_items(sig, config)]
    if len(items) < 2:
        return set()
    plan = media_plan(len(items), config)
    records = (
        (list(band_key), [list(item_id), h])
        for item_id, h0 in items
        for band_key, (item_id, h) in band_records(item_id, h0, plan)
    )

    def in_band(key, values) -> list:
        group = [(tuple(item_id), h) for item_id, h in values]
        return [(a[0], b[0]) for a, b, _ in pairs_in_band(key[0], group, plan)]

    return _pairs_by_key_on_ray(ray, records, in_band)


def _ray_text_candidates(ray, sigs, config) -> set[tuple[int, int]]:
    """Sample pairs whose conversations' MinHash share an LSH bucket (buckets shuffled by key),
    verified on the estimated Jaccard. Turn level keeps the single-process index."""
    from .dedup.near import text_candidates
    from .dedup.text import candidate_pairs_in_bucket, jaccard, lsh_bands, minhash_band_records

    if config.text_level != "conversation":
        return text_candidates(sigs, config)
    bands = lsh_bands(config.text_threshold, config.minhash)
    records = (
        ([band, bucket.hex()], doc)
        for i, sig in enumerate(sigs)
        if sig.conv_minhash is not None
        for (band, bucket), doc in minhash_band_records(i, sig.conv_minhash, bands)
    )
    candidates = _pairs_by_key_on_ray(ray, records, lambda key, docs: candidate_pairs_in_bucket(docs))
    return {
        (a, b) for a, b in candidates if jaccard(sigs[a].conv_minhash, sigs[b].conv_minhash) >= config.text_threshold
    }


def _prepare(out_dir: Path, work: Path, run_info: dict, resume: bool) -> None:
    """A fresh run clears the previous outputs; a resumed one checks it continues the same run."""
    run_file = work / "run.json"
    if resume:
        if not run_file.is_file():
            raise ResumeError(f"nothing to resume in {out_dir}: no interrupted build there")
        previous = json.loads(run_file.read_text())
        if previous != run_info:
            changed = sorted(k for k in run_info if previous.get(k) != run_info[k])
            raise ResumeError(f"cannot resume {out_dir}: {', '.join(changed)} changed since the interrupted run")
        return
    if work.exists():
        shutil.rmtree(work)
    for old in [*out_dir.glob("*.tar"), *out_dir.glob("*.tmp"), *(out_dir / n for n in OUTPUTS)]:
        old.unlink(missing_ok=True)
    work.mkdir(parents=True)
    run_file.write_text(json.dumps(run_info, indent=2))


def _write_reports(out_dir: Path, recipe: Recipe, rows, stats, shards, started, reports) -> dict:
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
    for name in ("near_duplicates", "decontamination"):
        (out_dir / f"{name}.jsonl").write_bytes(b"".join(dump_json(r) + b"\n" for r in reports[name]))
    totals = {
        "read": sum(s["read"] for s in stats.values()),
        "written": sum(s["written"] for s in stats.values()),
        "quarantined": sum(sum(s["quarantined"].values()) for s in stats.values()),
        "duplicates": sum(s["duplicates"] for s in stats.values()),
        "decontaminated": sum(s["decontaminated"] for s in stats.values()),
    }
    wall = time.time() - started
    manifest = {
        "recipe": recipe.name,
        "recipe_version": recipe.version,
        "pipeline_version": __version__,
        "totals": totals,
        "sources": stats,
        "near_duplicate_clusters": len(reports["near_duplicates"]),
        "decontamination": reports["decontamination_summary"],
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
