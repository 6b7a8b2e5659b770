"""The pipeline's stages as plain Python: plan work units, build and validate samples, dedup, account.

The executor runs these on Ray; a unit test calls them directly. A *work unit* is a run of
consecutive records of one source. Processing a unit normalizes each record into a sample
(the adapter loads its media), validates it, and writes the valid samples to a staging tar
fragment; it returns one small outcome row per record, which is all the driver ever sees.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path

from .adapters import RawRecord, get_adapter
from .dedup import (
    SampleSignature,
    build_index,
    contamination_summary,
    find_contamination,
    find_near_duplicates,
    get_exact_key,
    signature_of,
)
from .errors import BuildError, SourceError
from .outdir import changed_files, fingerprints
from .recipe import Recipe
from .sample import make_key
from .validate import check_sample
from .writer import sample_members, write_atomic, write_tar

log = logging.getLogger(__name__)


# --- planning (driver) -------------------------------------------------------------------------


def adapter_spec(recipe: Recipe, source_name: str, sources_dir: Path) -> dict:
    src = recipe.source(source_name)
    return {
        "adapter": src.adapter,
        "root": str(Path(sources_dir) / src.path),
        "params": dataclasses.asdict(src.params),
        "source_name": src.name,
        "symlinks": src.symlinks,
    }


@lru_cache(maxsize=32)
def _adapter_from_json(spec_json: str):
    spec = json.loads(spec_json)
    cls = get_adapter(spec["adapter"])
    return cls(
        spec["root"],
        cls.Params(**spec["params"]),
        source_name=spec["source_name"],
        symlinks=spec.get("symlinks", "refuse"),
    )


def make_adapter(spec: dict):
    """An adapter built from its spec, cached per process (workers reuse it across units)."""
    return _adapter_from_json(json.dumps(spec, sort_keys=True))


def check_sources(recipe: Recipe, sources_dir: str | Path) -> Path:
    """``--sources`` and every source folder in it must exist (checked before anything starts)."""
    sources_dir = Path(sources_dir).expanduser().resolve()
    if not sources_dir.is_dir():
        what = "is not a folder" if sources_dir.exists() else "does not exist"
        raise BuildError(f"--sources {sources_dir} {what}")
    for src in recipe.sources:
        root = sources_dir / src.path
        if not root.is_dir():
            have = sorted(p.name for p in sources_dir.iterdir() if p.is_dir())[:12]
            raise BuildError(f"source {src.name}: folder {root} does not exist (--sources {sources_dir} + path "
                             f"{src.path!r}); --sources holds: {', '.join(have) or 'nothing'}")  # fmt: skip
    return sources_dir


def plan_units(recipe: Recipe, sources_dir: Path) -> tuple[list[dict], dict[str, dict], dict[str, dict]]:
    """List every source's records, apply the recipe's sampling, and cut them into work units.

    Returns (units, listing counts per source, fingerprints per source of the files the listing
    read). Records keep their listing position (``ordinal``) so that ties are always broken the
    same way. A unit's id ends with a hash of its records, so a unit whose records changed since
    an interrupted run is never taken for the finished one."""
    units, listing, inputs = [], {}, {}
    for src in recipe.sources:
        spec = adapter_spec(recipe, src.name, sources_dir)
        adapter = make_adapter(spec)
        with adapter.src.recording() as reads:
            adapter.preflight()
            records = list(adapter.list_records())
        inputs[src.name] = fingerprints(adapter.root, reads)
        chosen = src.sampling.select(list(enumerate(records)))
        listing[src.name] = {"listed": len(records), "selected": len(chosen)}
        step = recipe.output.records_per_unit
        spec_json = json.dumps(spec, sort_keys=True)
        for start in range(0, len(chosen), step):
            chunk = json.dumps([[ordinal, rec.to_json()] for ordinal, rec in chosen[start : start + step]])
            digest = hashlib.sha256(f"{spec_json}\n{chunk}".encode()).hexdigest()[:12]
            units.append({
                "unit_id": f"{_safe(src.name)}-{start // step:06d}-{digest}",
                "source": src.name,
                "spec": spec_json,
                "records": chunk,
            })  # fmt: skip
    return units, listing, inputs


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name)


# --- normalize -> media -> validate -> stage (workers) ------------------------------------------


def process_unit(
    unit: dict,
    staging_dir: Path,
    *,
    recipe_name: str,
    recipe_version: str,
    recipe_sha256: str = "",
    exact_key: str = "both",
    near_config=None,
) -> list[dict]:
    """Build, validate and stage one unit's samples; one outcome row per record.

    ``exact_key`` names the exact-duplicate key (text, media or both); with ``near_config`` each
    row also carries the sample's dedup signature (perceptual hashes and MinHash), which the
    driver uses for near-duplicates and decontamination.

    Every per-record step (key, build, validation, member names, signature) runs inside the
    record's error handling: a bad record is quarantined with its reason, never the unit. A
    :class:`BuildError` (a configuration or environment fault) stops the build.

    Writes ``<unit>.tar`` (the valid samples' members), then ``<unit>.done.json`` (the rows and a
    fingerprint of every file the unit read): the marker comes last, so a unit with a marker is
    complete and a resumed build skips it unless one of those files changed. ``staging_dir`` is
    made by the driver: a worker orphaned by a killed build finds it gone and writes nothing."""
    adapter = make_adapter(json.loads(unit["spec"]))
    key_of = get_exact_key(exact_key)
    rows, members = [], []
    with adapter.src.recording() as reads:
        for ordinal, rec_json in json.loads(unit["records"]):
            record = RawRecord.from_json(rec_json)
            row = process_record(adapter, unit["source"], ordinal, record, key_of, near_config,
                                  recipe_name, recipe_version, recipe_sha256)  # fmt: skip
            if row["status"] == "ok":
                row["fragment"] = f"{unit['unit_id']}.tar"
                members += row.pop("_files")
            rows.append(_printable(row))
    write_tar(staging_dir / f"{unit['unit_id']}.tar", members, tmp_dir=staging_dir)
    marker = {"rows": rows, "reads": fingerprints(adapter.root, reads)}
    write_atomic(unit_marker(staging_dir, unit["unit_id"]), json.dumps(marker).encode(), tmp_dir=staging_dir)
    return rows


def process_record(adapter, source, ordinal, record, key_of, near_config, *recipe) -> dict:
    """One record through every per-record step; its outcome row (``_files`` holds the members of
    a sample to write). Only a :class:`BuildError` escapes."""
    row = {"source": source, "ordinal": ordinal, "source_file": record.source_file, "locator": record.locator,
           "key": "", "status": "ok", "reason": "", "detail": "", "fingerprint": "", "content": "", "nbytes": 0,
           "members": [], "fragment": "", "signature": ""}  # fmt: skip
    recipe_name, recipe_version, recipe_sha256 = recipe
    try:
        row["key"] = _fallback_key(source, record, ordinal)
        row["key"] = adapter.key_for(record)
        sample = adapter.build(record, recipe=recipe_name, recipe_version=recipe_version, recipe_sha256=recipe_sha256)
        check_sample(sample)
        sample_files = sample_members(sample)
        content = hashlib.sha256()
        for name, data in sample_files:
            content.update(f"{name}\0{len(data)}\0".encode())
            content.update(data)
        row.update(
            fingerprint=key_of(sample),
            content=content.hexdigest(),
            nbytes=sum(len(d) + 1024 for _, d in sample_files),  # + tar header and padding, roughly
            members=[name for name, _ in sample_files],
            _files=sample_files,
        )
        if near_config is not None:
            row["signature"] = json.dumps(signature_of(sample, near_config).to_row())
    except BuildError:
        raise
    except SourceError as err:  # validation and format errors included
        row.update(status="quarantined", reason=err.reason, detail=str(err))
    except UnicodeError as err:  # text that cannot be written (a lone surrogate that got through)
        row.update(status="quarantined", reason="invalid_annotation", detail=f"not valid Unicode: {err}")
    except Exception as err:  # an adapter bug must not lose the record silently either
        log.exception("unexpected error on %s %s", source, record.locator)
        row.update(status="quarantined", reason="internal_error", detail=f"{type(err).__name__}: {err}")
    if row["status"] != "ok":
        row.update(fingerprint="", content="", nbytes=0, members=[], signature="")
        row.pop("_files", None)
    return row


def _fallback_key(source: str, record: RawRecord, ordinal: int) -> str:
    """A key for a record whose own id cannot make one (it is quarantined under this key)."""
    try:
        return make_key(source, f"{Path(record.source_file).stem}-{record.locator}")
    except UnicodeError:
        return make_key(source, f"record{ordinal}")


def _printable(row: dict) -> dict:
    """The row with every text encodable as UTF-8 (a lone surrogate shown escaped), so the
    reports can always be written."""
    return {k: v.encode("utf-8", "backslashreplace").decode("utf-8") if isinstance(v, str) else v
            for k, v in row.items()}  # fmt: skip


def unit_marker(staging_dir: Path, unit_id: str) -> Path:
    return staging_dir / f"{unit_id}.done.json"


def completed_units(staging_dir: Path) -> dict[str, dict]:
    """What the units a previous (interrupted) run finished left: ``{unit id: {"rows", "reads"}}``."""
    out = {}
    for p in staging_dir.glob("*.done.json"):
        name = p.name[: -len(".done.json")]
        if name.endswith(".tar"):  # a shard's marker
            continue
        try:
            marker = json.loads(p.read_text())
        except ValueError:
            continue
        if isinstance(marker, dict) and "rows" in marker:
            out[name] = marker
    return out


def stale_units(finished: dict[str, dict], units: list[dict], roots: dict[str, Path],
                inputs: dict[str, dict], recorded: dict[str, dict]) -> dict[str, list[str]]:  # fmt: skip
    """The sources whose inputs changed since the interrupted run, with the changed files.

    A source is stale when a file its listing read (``recorded``: the run file's fingerprints)
    or a file one of its finished units read now differs. Adapters cache side files and decodes
    across the units of a worker, so a unit cannot say alone everything it depended on: a change
    makes every finished unit of that source redone."""
    by_source: dict[str, dict[str, dict]] = defaultdict(dict)
    for u in units:
        marker = finished.get(u["unit_id"])
        if marker:
            by_source[u["source"]].update(marker.get("reads", {}))
    changed: dict[str, list[str]] = {}
    for source, root in roots.items():
        files = dict(by_source.get(source, {}))
        files.update(recorded.get(source, {}))
        now = [f for f in changed_files(root, files)]
        listing_now, listing_then = inputs.get(source, {}), recorded.get(source)
        if listing_then is not None:
            now += [f"{rel} (new)" for rel in sorted(set(listing_now) - set(listing_then))]
        if now:
            changed[source] = now
    return changed


# --- exact dedup and accounting (driver) --------------------------------------------------------


def resolve_duplicates(rows: list[dict], *, exact: bool) -> list[dict]:
    """Mark exact duplicates and key collisions among the valid rows, deterministically.

    Within a group the kept sample is the one with the smallest key (then source, then
    listing position); the others point to it with ``duplicate_of``.
    """
    order = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: (r["key"], r["source"], r["ordinal"]))
    kept_by_key: dict[str, dict] = {}
    kept_by_print: dict[str, dict] = {}
    for row in order:
        if exact and row["fingerprint"] in kept_by_print:
            row.update(
                status="duplicate",
                reason="exact_duplicate",
                duplicate_of=kept_by_print[row["fingerprint"]]["key"],
            )
        elif row["key"] in kept_by_key:
            first = kept_by_key[row["key"]]
            row.update(
                status="quarantined",
                reason="duplicate_key",
                detail=f"key {row['key']} already used by {first['source']} {first['locator']}",
            )
        else:
            kept_by_key[row["key"]] = row
            kept_by_print[row["fingerprint"]] = row
    return rows


def _signatures(rows: list[dict]) -> tuple[list, dict[str, dict]]:
    live = [r for r in sorted(rows, key=lambda r: r["key"]) if r["status"] == "ok" and r["signature"]]
    return [SampleSignature.from_row(json.loads(r["signature"])) for r in live], {r["key"]: r for r in live}


def apply_decontamination(rows: list[dict], benchmarks: dict[str, Path], config) -> tuple[list[dict], dict]:
    """Mark valid samples that share an image, a video or a question with a benchmark as
    ``contaminated``; return the report rows and the per-benchmark summary."""
    index = build_index(benchmarks, config)
    sigs, by_key = _signatures(rows)
    report = find_contamination(index, sigs, config)
    for r in report:
        row = by_key[r["training_key"]]
        if row["status"] == "ok":
            row.update(status="contaminated", reason=f"contaminated:{r['benchmark']}",
                       detail=f"{r['reason']} of {r['benchmark']} item {r['benchmark_item']}")  # fmt: skip
    summary = contamination_summary(report, index)
    return report, summary


def apply_near_duplicates(rows: list[dict], config, *, media_candidates_fn=None, text_candidates_fn=None) -> list[dict]:
    """Mark near-duplicates of the surviving samples; return one report row per cluster."""
    sigs, by_key = _signatures(rows)
    result = find_near_duplicates(
        sigs, config, media_candidates_fn=media_candidates_fn, text_candidates_fn=text_candidates_fn
    )
    for cluster_row in result.rows:
        for removed in cluster_row["removed"]:
            by_key[removed].update(status="duplicate", reason=cluster_row["reason"], duplicate_of=cluster_row["kept"])
    return result.rows


def dedup_provenance(rows: list[dict]) -> dict[str, dict]:
    """For each kept sample that others duplicate: its cluster id and the removed keys."""
    out: dict[str, dict] = {}
    for r in sorted(rows, key=lambda r: r["key"]):
        if r["status"] == "duplicate":
            entry = out.setdefault(r["duplicate_of"], {"cluster": r["fingerprint"][:16], "removed": []})
            entry["removed"].append({"key": r["key"], "reason": r["reason"]})
    return out


def account(rows: list[dict], listing: dict[str, dict]) -> dict[str, dict]:
    """Per-source counts that reconcile: read = written + quarantined (by reason) + duplicates
    + decontaminated."""
    stats: dict[str, dict] = {}
    by_source: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_source[r["source"]].append(r)
    for source, info in listing.items():
        rs = by_source.get(source, [])
        reasons = Counter(r["reason"] for r in rs if r["status"] == "quarantined")
        s = {
            "listed": info["listed"],
            "read": len(rs),
            "written": sum(r["status"] == "ok" for r in rs),
            "quarantined": dict(sorted(reasons.items())),
            "duplicates": sum(r["status"] == "duplicate" for r in rs),
            "decontaminated": sum(r["status"] == "contaminated" for r in rs),
        }
        removed = sum(reasons.values()) + s["duplicates"] + s["decontaminated"]
        if s["read"] != s["written"] + removed or s["read"] != info["selected"]:
            raise RuntimeError(f"counts do not reconcile for {source}: {s} (selected {info['selected']})")
        stats[source] = s
    return stats


def num_samples_by_dataset(kept: list[dict], recipe: Recipe) -> dict[str, int]:
    """Written samples per M4 ``metadata.dataset`` (each source names its dataset in its params)."""
    per_source: dict[str, int] = {}
    for r in kept:
        per_source[r["source"]] = per_source.get(r["source"], 0) + 1
    out: dict[str, int] = {}
    for src in recipe.sources:
        dataset = getattr(src.params, "dataset_name", None)
        if dataset:
            out[dataset] = out.get(dataset, 0) + per_source.get(src.name, 0)
    return out


def check_quarantine_fractions(stats: dict[str, dict], recipe: Recipe) -> None:
    """Stop the build when a source quarantined more than its ``max_quarantine_fraction`` of the
    records it read (records a recipe filters out on purpose, ``filtered``, do not count)."""
    for src in recipe.sources:
        s = stats.get(src.name)
        if not s or not s["read"]:
            continue
        reasons = {k: v for k, v in s["quarantined"].items() if k != "filtered"}
        bad = sum(reasons.values())
        if bad / s["read"] > src.max_quarantine_fraction:
            top, n = max(sorted(reasons.items()), key=lambda kv: kv[1])
            raise BuildError(
                f"source {src.name}: {bad} of {s['read']} records quarantined ({bad / s['read']:.0%} > "
                f"max_quarantine_fraction {src.max_quarantine_fraction:.0%}); mostly {top} ({n}); "
                f"see quarantine.jsonl in the output folder"
            )
