"""The Ray executor: the only module that knows Ray.

    list parts (driver)  -> survey / select / cut units      (Ray tasks, one per annotation part)
    read -> normalize -> media -> validate -> stage         (Ray Data map, one task per unit:
                                                             tar fragment + outcome parquet)
    exact duplicates                                         (sort by fingerprint, per block)
    near duplicates                                          (compact arrays, one worker)
    statuses + shard plans                                   (sort by key, streamed through the driver)
    write shards                                             (Ray Data map, one task per shard)
    index, quarantine table, dedup reports, manifest         (streamed; index last)

The driver lists annotation parts, never records, and sees a few counts per unit and one batch
of the key-sorted rows at a time: its memory does not grow with the corpus. Media bytes never
pass through it: workers stage them in tar fragments and the shard writers copy them from there.
Shard content depends only on the sorted keys, never on scheduling, so the output is
deterministic whatever the number of workers. Builds of up to ``IN_PROCESS_ROWS`` valid samples
run the stages after the units in the driver's process (the same functions, without starting
Ray Data datasets).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
from tqdm.contrib.logging import logging_redirect_tqdm

from . import __version__
from .cluster import init_ray, quiet_ray, ray_where
from .dedup import build_index, contamination_summary
from .errors import BuildError
from .outcomes import (
    EXACT_COLUMNS,
    LIVE_COLUMNS,
    FinalPass,
    as_final,
    exact_duplicates,
    near_stage,
    outcome_path,
    read_outcomes,
    removal_table,
    sorted_rows,
)
from .outdir import OutputFolder, ResumeError
from .plan import Rule, choose_rule
from .process import (
    adapter_spec,
    candidates_task,
    check_quarantine_fractions,
    check_sources,
    completed_units,
    make_adapter,
    num_samples_by_dataset,
    probe_for,
    process_unit,
    stale_units,
    survey_task,
    unit_marker,
    units_task,
)
from .recipe import Recipe
from .reports import OUTPUTS, account, load_plan, write_quarantine, write_reports
from .writer import completed_shard, dump_json, plan_digest, write_atomic, write_shard

log = logging.getLogger(__name__)

__all__ = ["ResumeError", "init_ray", "map_shards", "quiet_ray", "run_build"]


# Builds with at most this many valid samples run the dedup and assembly stages in the driver's
# process (no Ray Data dataset to start: about a second each); larger ones as Ray Data stages that
# stream, so the driver's memory does not grow with the corpus.
IN_PROCESS_ROWS = int(os.environ.get("M4_IN_PROCESS_ROWS", "50000"))
STREAM_BATCH = 4096  # rows the driver holds at once in the final pass (and rows per parquet row group)


def run_build(
    recipe: Recipe,
    sources_dir: str | Path,
    out_dir: str | Path,
    *,
    ray_address: str | None = None,
    num_cpus: int | None = None,
    max_workers: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    extra_outputs: tuple[str, ...] = (),
    verbose: bool = False,
) -> dict:
    """Build the recipe's shards into ``out_dir``; return the run manifest.

    Everything is checked before the output folder is touched: the folder itself (not a file,
    writable, not held by another build, no foreign files unless ``overwrite``), the sources and
    each adapter's preflight, and the listing of every record (read by Ray tasks, part by part:
    the driver never holds records). Only then is the folder locked and a previous build's
    outputs (and nothing else) removed. See :mod:`m4_pipeline.outdir`.

    Work happens in units (runs of selected records) and shards, each finished by a marker
    written after its output. ``resume=True`` continues an interrupted build of the same recipe
    and sources: finished units and shards are kept unless a file they read changed since (then
    that source's units are redone, and a warning names the files), the rest is redone, and the
    result is byte-identical to an uninterrupted run. ``max_workers`` caps the parallel tasks
    (default: all CPUs). ``extra_outputs`` names files or folders the caller writes into
    ``out_dir`` after the build (a report), which a later build may then remove.
    """
    started = time.time()
    out = OutputFolder(out_dir)
    out.check_usable()
    out.check_free(resume=resume, overwrite=overwrite)
    sources_dir = check_sources(recipe, sources_dir)
    specs = {src.name: adapter_spec(recipe, src.name, sources_dir) for src in recipe.sources}
    for spec in specs.values():  # configuration faults first, before Ray starts
        make_adapter(spec).preflight()
    ray = init_ray(ray_address, num_cpus, verbose=verbose)  # the environment, before the folder is touched
    with logging_redirect_tqdm():
        units, listing, inputs = _plan(ray, recipe, specs, progress=progress)
    identity = {"recipe": recipe.name, "recipe_sha256": recipe.sha256, "sources": str(sources_dir),
                "pipeline_version": __version__}  # fmt: skip
    with out.held({"ray": ray_where(ray, ray_address or os.environ.get("RAY_ADDRESS"))}):
        run = out.begin(identity, resume=resume, overwrite=overwrite)
        with logging_redirect_tqdm():
            manifest = _build(ray, recipe, sources_dir, specs, out, run, units, listing, inputs, started=started,
                              max_workers=max_workers, progress=progress, extra_outputs=extra_outputs)  # fmt: skip
        out.finish()
    return manifest


# --- planning: Ray tasks over annotation parts ---------------------------------------------------


def _remote(ray, fn):
    return ray.remote(num_cpus=1, max_retries=2)(_plain_errors(fn)).remote


def _plain_errors(fn):
    """``fn`` raising a :class:`BuildError` as a plain one (its subclasses' arguments need not
    survive Ray's pickling), so the driver can stop with its one-line message."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BuildError as err:
            raise BuildError(str(err)) from None

    return wrapper


def _plan(ray, recipe: Recipe, specs: dict, *, progress: bool) -> tuple[list[dict], dict, dict]:
    """Every source's work units, from Ray tasks that read the annotation parts (the driver lists
    parts only). Returns (units in source order, listing counts per source, file fingerprints
    per source)."""

    per_unit = recipe.output.records_per_unit
    jobs = []  # (source, rank, part index, part)
    for rank, src in enumerate(recipe.sources):
        for i, part in enumerate(make_adapter(specs[src.name]).parts()):
            jobs.append((src, rank, i, part.to_list()))
    survey = _remote(ray, survey_task)
    refs = []
    for src, rank, i, part in jobs:
        all_at_once = Rule("all").to_dict() if src.sampling.mode == "all" else None
        sampling = dataclasses.asdict(src.sampling)
        refs.append(survey(specs[src.name], part, sampling, all_at_once, per_unit, [src.name, rank, i]))
    surveys = _gather(ray, refs, desc="listing", progress=progress)
    by_source: dict[str, list[tuple]] = {}
    for (src, rank, i, part), s in zip(jobs, surveys):
        by_source.setdefault(src.name, []).append((rank, i, part, s))
    units, listing, inputs = [], {}, {}
    for rank, src in enumerate(recipe.sources):
        parts = by_source.get(src.name, [])
        inputs[src.name] = {k: v for *_, s in parts for k, v in s["reads"].items()}
        total = sum(s["records"] for *_, s in parts)
        rule, bucket = choose_rule(src.sampling, [s for *_, s in parts])
        if rule is None:  # random:N: the candidates of the bucket that straddles N
            refs = [_remote(ray, candidates_task)(specs[src.name], part, dataclasses.asdict(src.sampling), bucket)
                    for _, _, part, s in parts if any(b == bucket for b, _ in s["hist"])]  # fmt: skip
            candidates = [tuple(c) for found in ray.get(refs) for c in found]
            rule, _ = choose_rule(src.sampling, [s for *_, s in parts], candidates)
        bases = [0]
        for *_, s in parts:
            bases.append(bases[-1] + s["records"])
        if rule.mode == "all" and all("units" in s for *_, s in parts):
            found = [[{**u, "first_ordinal": u["first_ordinal"] + base} for u in s["units"]]
                     for (*_, s), base in zip(parts, bases)]  # fmt: skip
        else:
            task = _remote(ray, units_task)
            found = ray.get([task(specs[src.name], part, base, rule.to_dict(), per_unit, [src.name, rank, i])
                             for (_, i, part, _), base in zip(parts, bases)])  # fmt: skip
        source_units = [u for part_units in found for u in part_units]
        units += source_units
        listing[src.name] = {"listed": total, "selected": sum(u["count"] for u in source_units)}
    return units, listing, inputs


def _gather(ray, refs: list, *, desc: str, progress: bool) -> list:
    """The results of ``refs`` in order, with a progress bar; a BuildError in a task stops here."""
    from tqdm import tqdm

    results: dict = {}
    pending = {ref: i for i, ref in enumerate(refs)}
    with tqdm(total=len(refs), desc=desc, unit="part", disable=not progress) as bar:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                try:
                    results[pending.pop(ref)] = ray.get(ref)
                except Exception as err:
                    cause = _build_error_in(err)
                    if cause is not None:
                        raise BuildError(str(cause)) from None
                    raise
                bar.update(1)
    return [results[i] for i in range(len(refs))]


# --- the build -----------------------------------------------------------------------------------


def _build(ray, recipe, sources_dir, specs, out, run, units, listing, inputs, *, started, max_workers, progress,
           extra_outputs) -> dict:  # fmt: skip
    from ray.data import DataContext
    from tqdm import tqdm

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.execution_options.preserve_order = False
    ctx.execution_options.verbose_progress = False
    # Per-operator reservations kept one of two CPUs idle on small machines (measured: 1.06 -> 1.74
    # tasks in flight on 2 CPUs); every stage here is CPU-bound with num_cpus=1, so share freely.
    ctx.op_resource_reservation_enabled = False
    ctx.raise_original_map_exception = True  # a BuildError in a task reaches the driver as itself

    out_dir = out.folder
    marks = [("started", started), ("start_and_list", time.time())]  # Ray start-up (or joining) and the listing
    staging = out.staging(run)
    finished = completed_units(staging)
    roots = {name: Path(spec["root"]).resolve() for name, spec in specs.items()}
    if run.get("inputs"):
        for source, files in stale_units(finished, units, roots, inputs, run["inputs"]).items():
            log.warning(
                "resume: %s changed since the interrupted run: %s; its finished units are redone",
                source,
                ", ".join(files[:5]) + (f" and {len(files) - 5} more" if len(files) > 5 else ""),
            )
            redo = {u["unit_id"] for u in units if u["source"] == source} & set(finished)
            for unit_id in redo:  # removed before the run file takes the new fingerprints: a second kill
                # (before they are redone) cannot make them look finished again
                unit_marker(staging, unit_id).unlink(missing_ok=True)
                finished.pop(unit_id)
    run["inputs"] = inputs
    out.write_run(run)
    summaries = {uid: m["summary"] for uid, m in finished.items()}
    todo = [u for u in units if u["unit_id"] not in finished]
    total = sum(v["selected"] for v in listing.values())
    log.info("%d records in %d work units (%d already done)", total, len(units), len(units) - len(todo))
    limits = {"num_cpus": 1}
    if max_workers:
        limits["compute"] = ray.data.TaskPoolStrategy(size=max_workers)
    spec_dedup = recipe.dedup
    near_config = spec_dedup.near_config() if spec_dedup.needs_signatures else None
    index = None
    if spec_dedup.decontaminate:  # benchmark items are indexed first; training samples only probe them
        benchmarks = {name: sources_dir / path for name, path in spec_dedup.decontaminate.items()}
        index = build_index(benchmarks, spec_dedup.decontam_config())
    if todo:
        name, version, sha, exact_key = recipe.name, recipe.version, recipe.sha256, spec_dedup.exact_key
        decontam = spec_dedup.decontam_config() if index is not None else None

        def stage(unit: dict) -> dict:
            try:
                probe = probe_for(index, decontam) if index is not None else None
                return process_unit(unit, staging, spec=specs[unit["source"]], recipe_name=name, recipe_version=version,
                                    recipe_sha256=sha, exact_key=exact_key, near_config=near_config,
                                    probe=probe)  # fmt: skip
            except BuildError as err:  # as a plain BuildError: subclasses need not survive pickling
                raise BuildError(str(err)) from None

        ds = ray.data.from_items(todo, override_num_blocks=len(todo)).map(stage, **limits)
        done = sum(s["records"] for s in summaries.values())
        with tqdm(total=total, initial=done, desc="samples", unit="rec", disable=not progress) as bar:
            for row in _rows(ds):
                summaries[row["unit_id"]] = dict(row)
                bar.update(row["records"])
    marks.append(("process", time.time()))
    files = [outcome_path(staging, u["unit_id"]) for u in units]
    ok_rows = sum(summaries[u["unit_id"]]["ok"] for u in units)
    in_process = ok_rows <= IN_PROCESS_ROWS
    removal_files = _exact_stage(ray, files, staging, in_process=in_process) if spec_dedup.exact else []
    near_rows: list[dict] = []
    if spec_dedup.near:
        near_rows, near_removals = _near_stage(ray, files, removal_files, spec_dedup.near_config(), in_process)
        if near_removals:
            near_file = staging / "removed-near.parquet"
            pq.write_table(removal_table(near_removals), near_file)
            removal_files = [*removal_files, near_file]
    marks.append(("dedup", time.time()))
    final = _final_pass(ray, recipe, staging, files, removal_files, in_process=in_process)
    marks.append(("final_pass", time.time()))
    stats = account(recipe, listing, units, summaries, final)
    names = final.shards  # the plans themselves stay in files: one is loaded at a time
    num_samples = num_samples_by_dataset({s: v["written"] for s, v in stats.items()}, recipe)

    def plan_of(name: str):
        plan = load_plan(staging, name)
        plan.digest = plan_digest(plan, num_samples)
        return plan

    out.plan_outputs(run, names + list(OUTPUTS) + list(extra_outputs))
    try:
        check_quarantine_fractions(stats, recipe)
    except BuildError:
        write_quarantine(out_dir, staging, files, final.collisions)
        raise

    def digest_of(name: str) -> str:  # asked only for a shard an earlier attempt finished
        return plan_of(name).digest

    shards = [info for name in names if (info := completed_shard(out_dir, staging, name, digest_of))]
    done_names = {s["name"] for s in shards}
    todo = [{"plan": name} for name in names if name not in done_names]
    if todo:

        def write(row: dict) -> dict:
            return write_shard(plan_of(row["plan"]), out_dir, staging, num_samples)

        ds = ray.data.from_items(todo, override_num_blocks=len(todo)).map(write, **limits)
        with tqdm(total=len(names), initial=len(shards), desc="shards", unit="shard", disable=not progress) as bar:
            for row in _rows(ds):
                shards.append(dict(row))
                bar.update(1)
    shards.sort(key=lambda s: s["name"])
    marks.append(("write", time.time()))
    for stale in set(run.get("outputs", [])) - set(names) - set(OUTPUTS) - set(extra_outputs):
        (out_dir / stale).unlink(missing_ok=True)  # a shard an earlier attempt of this run planned, now gone
    out.remove_replaced(run)
    summary = contamination_summary(final.contamination, index) if index else {}
    phases = {name: round(t - prev, 3) for (_, prev), (name, t) in zip(marks, marks[1:])}
    reports = {"near_duplicates": near_rows, "decontamination": final.contamination,
               "decontamination_summary": summary, "phase_seconds": phases}  # fmt: skip
    roots = {name: str(Path(spec["root"]).resolve()) for name, spec in specs.items()}
    return write_reports(out_dir, staging, recipe, files, final, stats, shards, started, reports, extra_outputs, roots)


# --- after every unit: exact duplicates, near duplicates, statuses and shard plans ---------------


def _read(ray, files: list[Path], columns: list[str] | None = None, *, status: str | None = "ok"):
    """A Ray dataset of the rows (``status`` ones only, when given) of parquet files, read by
    tasks (a block per group of files)."""

    def load(batch):
        return read_outcomes([Path(p) for p in batch["path"].to_pylist()], columns, status=status)

    items = [{"path": str(f)} for f in files]
    ds = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), 4 * _cpus(ray))))
    return ds.map_batches(load, batch_format="pyarrow", batch_size=None)


def _cpus(ray) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _write_blocks(ds, folder: Path, order_by: list[str] | None = None) -> list[Path]:
    """Each non-empty block of ``ds`` as a parquet file in ``folder`` (named by its content: the
    same rows, the same file, whatever the scheduling). With ``order_by`` (the columns ``ds`` is
    sorted by) the files come in sort order, by their first rows."""

    def write(batch):
        import hashlib

        import pyarrow as pa

        if not batch.num_rows:
            return pa.table({"path": pa.array([], pa.string()), "first": pa.array([], pa.string())})
        sink = pa.BufferOutputStream()
        pq.write_table(batch, sink, row_group_size=STREAM_BATCH)
        data = sink.getvalue().to_pybytes()
        path = folder / f"{hashlib.sha256(data).hexdigest()[:16]}.parquet"
        write_atomic(path, data, tmp_dir=folder)
        first = [batch[c][0].as_py() for c in order_by or []]
        return pa.table({"path": [str(path)], "first": [json.dumps(first)]})

    found = ds.map_batches(write, batch_format="pyarrow", batch_size=None).take_all()
    return [Path(p) for _, p in sorted((json.loads(r["first"]), r["path"]) for r in found)]


def _sorted_stream(ds, keys: list[str], folder: Path) -> Iterator[dict]:
    """The rows of ``ds`` sorted by ``keys``, in order, a batch at a time. Workers sort and write
    the sorted blocks to ``folder``; the driver reads the files. (Iterating the sorted dataset
    itself maps its blocks from the object store, and every page the driver touches there stays
    in its resident memory: +350 MB at 1M records.)"""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    for path in _write_blocks(ds.sort(keys), folder, order_by=keys):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=STREAM_BATCH):
            yield from batch.to_pylist()


def _exact_stage(ray, files: list[Path], staging: Path, *, in_process: bool) -> list[Path]:
    """Removal rows for the exact duplicates, as parquet files in ``staging/exact``."""
    folder = staging / "exact"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    if in_process:
        pq.write_table(exact_duplicates(read_outcomes(files, EXACT_COLUMNS, status="ok")), folder / "0.parquet")
    else:  # sorted by fingerprint, so that every fingerprint's rows are in one block
        ds = _read(ray, files, EXACT_COLUMNS).sort("fingerprint")
        return _write_blocks(ds.map_batches(exact_duplicates, batch_format="pyarrow", batch_size=None), folder)
    return sorted(folder.glob("*.parquet"))


def _near_stage(ray, files, removal_files, config, in_process: bool):
    if in_process:
        return near_stage(files, removal_files, config)
    return ray.get(_remote(ray, near_stage)(files, removal_files, config))  # compact arrays, in one worker


def _final_pass(ray, recipe, staging: Path, files, removal_files, *, in_process: bool) -> FinalPass:
    """Statuses, shard plans (as files in ``staging/plans``) and the duplicates report, from the
    rows sorted by key, streamed through the driver one batch at a time."""
    plans_dir = staging / "plans"
    if plans_dir.exists():
        shutil.rmtree(plans_dir)
    plans_dir.mkdir()
    dup_file = open(staging / "duplicates.part", "wb")  # noqa: SIM115 - closed below
    names: list[str] = []

    def on_shard(plan) -> None:
        (plans_dir / f"{plan.name}.json").write_text(json.dumps(dataclasses.asdict(plan)))
        names.append(plan.name)

    def on_duplicate(row: dict) -> None:
        dup_file.write(dump_json(row) + b"\n")

    removal_key = ["duplicate_of", "key"]
    final_key = ["key", "kind", "rank", "ordinal"]
    if in_process:
        import pyarrow as pa

        removals = pa.concat_tables([pq.read_table(f) for f in removal_files]) if removal_files else None
        live = as_final(read_outcomes(files, LIVE_COLUMNS, status="ok"), 0)
        both = pa.concat_tables([live, as_final(removals, 1)]) if removals is not None else live
        absorbed = sorted_rows(removals, removal_key) if removals is not None else iter(())
        rows = sorted_rows(both, final_key)
    else:
        live = _read(ray, files, LIVE_COLUMNS).map_batches(as_final, fn_args=(0,), batch_format="pyarrow",
                                                           batch_size=None)  # fmt: skip
        if removal_files:
            removals = _read(ray, removal_files, status=None)
            absorbed = _sorted_stream(removals, removal_key, staging / "absorbed")
            live = live.union(removals.map_batches(as_final, fn_args=(1,), batch_format="pyarrow", batch_size=None))
        else:
            absorbed = iter(())
        rows = _sorted_stream(live, final_key, staging / "final")
    final = FinalPass(prefix=recipe.name, max_samples=recipe.output.shard_max_samples,
                      max_bytes=recipe.output.shard_max_bytes, on_shard=on_shard, on_duplicate=on_duplicate,
                      absorbed=absorbed)  # fmt: skip
    try:
        final.rows(rows)
        final.close()
    finally:
        dup_file.close()
    final.shards = names
    return final


def _rows(ds):
    """The dataset's rows; a task that failed on a :class:`BuildError` stops the build with its
    own one-line message instead of Ray's wrapped traceback."""
    try:
        yield from ds.iter_rows()
    except Exception as err:
        cause = _build_error_in(err)
        if cause is not None:
            raise BuildError(str(cause)) from None
        raise


def _build_error_in(err: BaseException) -> BaseException | None:
    seen = set()
    stack = [err]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, BuildError) and not type(e).__module__.startswith("ray"):
            return e  # the task's own error, not Ray's wrapper that also passes for one
        stack += [e.__cause__, e.__context__, getattr(e, "cause", None)]
    return None


def map_shards(fn, paths: list[Path], *, ray_address: str | None = None, num_cpus: int | None = None,
               progress: bool = False, verbose: bool = False) -> list:  # fmt: skip
    """``fn(path)`` for every shard, one Ray task each; results (JSON-ready) in the order of ``paths``."""
    from tqdm import tqdm

    ray = init_ray(ray_address, num_cpus, verbose=verbose)
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False
    items = [{"i": i, "path": str(p)} for i, p in enumerate(paths)]

    def task(row: dict) -> dict:
        return {"i": row["i"], "result": json.dumps(fn(Path(row["path"])))}

    rows = []
    ds = ray.data.from_items(items, override_num_blocks=len(items)).map(task, num_cpus=1)
    with logging_redirect_tqdm(), tqdm(total=len(items), desc="shards", unit="shard", disable=not progress) as bar:
        for row in _rows(ds):
            rows.append(row)
            bar.update(1)
    return [json.loads(r["result"]) for r in sorted(rows, key=lambda r: r["i"])]
