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
import time
from pathlib import Path

from tqdm.contrib.logging import logging_redirect_tqdm

from . import __version__
from .errors import BuildError
from .outdir import OutputFolder, ResumeError
from .process import (
    account,
    adapter_spec,
    apply_decontamination,
    apply_near_duplicates,
    check_quarantine_fractions,
    check_sources,
    completed_units,
    dedup_provenance,
    num_samples_by_dataset,
    plan_units,
    process_unit,
    resolve_duplicates,
    stale_units,
    unit_marker,
)
from .recipe import Recipe
from .writer import ShardPlan, completed_shard, dump_json, plan_digest, plan_shards, write_atomic, write_shard

log = logging.getLogger(__name__)

__all__ = ["ResumeError", "init_ray", "map_shards", "quiet_ray", "run_build"]


def init_ray(address: str | None = None, num_cpus: int | None = None, temp_dir: str | None = None,
             *, verbose: bool = False):  # fmt: skip
    """Join ``address`` (or ``RAY_ADDRESS``) if given, else start an embedded local Ray.

    A cluster started with ``ray start --head`` uses token authentication when a token exists
    (Ray's default), but a driver given an explicit address does not turn it on by itself: when
    ``RAY_AUTH_MODE`` is unset and a token is at hand (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``
    or ``~/.ray/auth_token``) it is turned on here (a cluster without authentication accepts it
    too). Ray's own console lines are kept off the terminal (they stay in its session logs)."""
    import ray

    if ray.is_initialized():
        return ray
    quiet_ray(verbose)
    address = address or os.environ.get("RAY_ADDRESS") or None
    kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if address:
        import m4_pipeline

        _use_token_if_available()
        # Ship this package to the cluster's workers (they may not have it installed; the native
        # dependencies - ffmpeg, open3d's EGL, decord - must be installed on every node).
        kwargs["runtime_env"] = {"py_modules": [str(Path(m4_pipeline.__file__).parent)]}
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ray.exceptions.AuthenticationError) as err:
            raise BuildError(_connect_error(address, err)) from None
    else:
        if temp_dir:
            kwargs["_temp_dir"] = temp_dir
        ray.init(num_cpus=num_cpus, **kwargs)
    quiet_ray(verbose)
    return ray


def _ray_where(ray, address: str | None) -> str:
    """The cluster joined, or the local Ray's session folder (its processes' logs and sockets)."""
    if address:
        return address
    try:
        return ray._private.worker._global_node.get_session_dir_path()
    except AttributeError:
        return "local"


def _auth_token_available() -> bool:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    return Path(path).is_file()


def _use_token_if_available() -> None:
    if os.environ.get("RAY_AUTH_MODE") is None and _auth_token_available():
        os.environ["RAY_AUTH_MODE"] = "token"
        from ray._raylet import Config

        Config.initialize("")  # Ray reads the mode once per process: refresh it (as ray start does)


def _connect_error(address: str, err: Exception) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    hint = ""
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token" and not _auth_token_available():
        hint = ("; if the cluster uses token authentication (Ray's default), give this machine its token: "
                "~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN (`ray get-auth-token` on the head "
                "prints it)")  # fmt: skip
    elif "auth" in text.lower() or "Unauthenticated" in text:
        hint = "; the token given does not match the cluster's"
    return f"cannot join the Ray cluster at {address}: {text}{hint}"


def quiet_ray(verbose: bool = False) -> None:
    """Keep Ray's INFO/WARNING lines (Ray Data's execution plans, the token notice) off the
    terminal, where they break the progress bars; its session log files keep them all."""
    if verbose:
        return
    import ray.data  # noqa: F401  (configures its loggers on import: adjust them after)

    for name in ("ray", "ray.data", "ray.train", "ray.tune"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                handler.setLevel(logging.ERROR)


OUTPUTS = ("manifest.json", "quarantine.jsonl", "duplicates.jsonl", "near_duplicates.jsonl",
           "decontamination.jsonl", "index.json")  # fmt: skip


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
    each adapter's preflight, and the listing of every record. Only then is the folder locked
    and a previous build's outputs (and nothing else) removed. See :mod:`m4_pipeline.outdir`.

    Work happens in units (record chunks) and shards, each finished by a marker written after
    its output. ``resume=True`` continues an interrupted build of the same recipe and sources:
    finished units and shards are kept unless a file they read changed since (then that
    source's units are redone, and a warning names the files), the rest is redone, and the
    result is byte-identical to an uninterrupted run. ``max_workers`` caps the parallel tasks
    (default: all CPUs). ``extra_outputs`` names files or folders the caller writes into
    ``out_dir`` after the build (a report), which a later build may then remove.
    """
    started = time.time()
    out = OutputFolder(out_dir)
    out.check_usable()
    out.check_free(resume=resume, overwrite=overwrite)
    sources_dir = check_sources(recipe, sources_dir)
    units, listing, inputs = plan_units(recipe, sources_dir)
    identity = {"recipe": recipe.name, "recipe_sha256": recipe.sha256, "sources": str(sources_dir),
                "pipeline_version": __version__}  # fmt: skip
    ray = init_ray(ray_address, num_cpus, verbose=verbose)  # the environment, before the folder is touched
    with out.held({"ray": _ray_where(ray, ray_address or os.environ.get("RAY_ADDRESS"))}):
        run = out.begin(identity, resume=resume, overwrite=overwrite)
        with logging_redirect_tqdm():
            manifest = _build(ray, recipe, sources_dir, out, run, units, listing, inputs, started=started,
                              max_workers=max_workers, progress=progress, extra_outputs=extra_outputs)  # fmt: skip
        out.finish()
    return manifest


def _build(ray, recipe, sources_dir, out, run, units, listing, inputs, *, started, max_workers, progress,
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
    staging = out.staging(run)
    finished = completed_units(staging)
    roots = {src.name: Path(adapter_spec(recipe, src.name, sources_dir)["root"]).resolve() for src in recipe.sources}
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
    rows: list[dict] = [row for u in units for row in finished.get(u["unit_id"], {}).get("rows", [])]
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
            try:
                return process_unit(unit, staging, recipe_name=name, recipe_version=version, recipe_sha256=sha,
                                    exact_key=exact_key, near_config=near_config)  # fmt: skip
            except BuildError as err:  # as a plain BuildError: subclasses need not survive pickling
                raise BuildError(str(err)) from None

        ds = ray.data.from_items(todo, override_num_blocks=len(todo)).flat_map(stage, **limits)
        with tqdm(total=total, initial=len(rows), desc="samples", unit="rec", disable=not progress) as bar:
            for row in _rows(ds):
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
    for p in plans:
        p.digest = plan_digest(p, num_samples, dedup)
    out.plan_outputs(run, [p.name for p in plans] + list(OUTPUTS) + list(extra_outputs))
    try:
        check_quarantine_fractions(stats, recipe)
    except BuildError:
        _write_quarantine(out_dir, staging, rows)
        raise
    shards = [info for p in plans if (info := completed_shard(out_dir, staging, p))]
    done_names = {s["name"] for s in shards}
    todo_plans = [p for p in plans if p.name not in done_names]
    if todo_plans:
        plan_rows = [{"plan": json.dumps(dataclasses.asdict(p))} for p in todo_plans]

        def write(row: dict) -> dict:
            return write_shard(ShardPlan(**json.loads(row["plan"])), out_dir, staging, num_samples, dedup)

        ds = ray.data.from_items(plan_rows, override_num_blocks=len(plan_rows)).map(write, **limits)
        with tqdm(total=len(plans), initial=len(shards), desc="shards", unit="shard", disable=not progress) as bar:
            for row in _rows(ds):
                shards.append(dict(row))
                bar.update(1)
    shards.sort(key=lambda s: s["name"])
    for stale in set(run.get("outputs", [])) - {p.name for p in plans} - set(OUTPUTS) - set(extra_outputs):
        (out_dir / stale).unlink(missing_ok=True)  # a shard an earlier attempt of this run planned, now gone
    out.remove_replaced(run)
    return _write_reports(out_dir, staging, recipe, rows, stats, shards, started, reports, extra_outputs)


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


def _write_quarantine(out_dir: Path, staging: Path, rows: list[dict]) -> bytes:
    order = sorted(rows, key=lambda r: (r["source"], r["ordinal"]))
    quarantine = [
        {k: r[k] for k in ("source", "source_file", "locator", "key", "reason", "detail")}
        for r in order if r["status"] == "quarantined"
    ]  # fmt: skip
    data = b"".join(dump_json(q) + b"\n" for q in quarantine)
    write_atomic(out_dir / "quarantine.jsonl", data, tmp_dir=staging)
    return data


def _write_reports(out_dir: Path, staging: Path, recipe: Recipe, rows, stats, shards, started, reports,
                   extra_outputs) -> dict:  # fmt: skip
    """The reports, each written atomically; ``index.json`` last, listing every file of the build."""
    order = sorted(rows, key=lambda r: (r["source"], r["ordinal"]))
    duplicates = [
        {"key": r["key"], "duplicate_of": r["duplicate_of"], "reason": r["reason"], "fingerprint": r["fingerprint"],
         "source": r["source"], "locator": r["locator"]}
        for r in order if r["status"] == "duplicate"
    ]  # fmt: skip
    written: dict[str, int | None] = {"quarantine.jsonl": len(_write_quarantine(out_dir, staging, rows))}

    def put(name: str, data: bytes) -> None:
        write_atomic(out_dir / name, data, tmp_dir=staging)
        written[name] = len(data)

    put("duplicates.jsonl", b"".join(dump_json(d) + b"\n" for d in duplicates))
    for name in ("near_duplicates", "decontamination"):
        put(f"{name}.jsonl", b"".join(dump_json(r) + b"\n" for r in reports[name]))
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
    put("manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
    written["manifest.json"] = None  # its timings vary from run to run: the index stays byte-identical
    files = [{"name": n, "bytes": b} for n, b in sorted(written.items())]
    files += [{"name": n, "bytes": None} for n in extra_outputs]
    index = {
        "shards": [{k: s[k] for k in ("name", "samples", "bytes", "sha256", "first_key", "last_key")} for s in shards],
        "files": files,
    }
    put("index.json", (json.dumps(index, indent=2) + "\n").encode())  # written last
    return manifest
