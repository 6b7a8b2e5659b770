"""The per-unit stage as plain Python: build, validate and stage the samples of one work unit.

The executor runs it on Ray; a unit test calls it directly. A *work unit* (:mod:`.plan`) is a run
of selected records of one source, which the unit reads itself from its start. Processing it
normalizes each record into a sample (the adapter loads its media), validates it, computes its
dedup signature and benchmark hits when the recipe asks, and writes the valid samples to a
staging tar fragment and one outcome row per record to a parquet file (:mod:`.outcomes`). The
driver gets a few counts back, never the rows.
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
from .dedup import get_exact_key, signature_of
from .dedup.candidates import media_reps, text_bands
from .dedup.decontam import ContaminationProbe
from .errors import BuildError, SourceError
from .outcomes import outcome_path, write_outcomes
from .outdir import changed_files, fingerprints
from .plan import Rule, bucket_candidates, plan_part_units, survey_part, unit_records
from .readers import Part
from .recipe import Recipe, Sampling
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
        "media": src.media,
        "max_side": src.max_side,
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
        media=spec.get("media", "frames"),
        max_side=spec.get("max_side", 384),
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


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name)


# --- listing tasks (workers): survey a part, cut its units -----------------------------------------


def survey_task(spec: dict, part: list, sampling: dict, units_rule: dict | None, per_unit: int, tag: list) -> dict:
    """One part's record count (and sampling-hash histogram), the files the listing read, and —
    when the source keeps every record — its units at once."""
    adapter = make_adapter(spec)
    with adapter.src.recording() as reads:
        out = survey_part(adapter, Part.from_list(part), Sampling(**sampling))
        if units_rule is not None:
            out["units"] = _units(adapter, part, 0, units_rule, per_unit, tag)
    out["reads"] = fingerprints(adapter.root, reads)
    return out


def _units(adapter, part: list, base: int, rule: dict, per_unit: int, tag: list) -> list[dict]:
    source, rank, index = tag
    units = plan_part_units(adapter, source, index, Part.from_list(part), base, Rule(**rule), per_unit)
    return [{**u.to_row(), "rank": rank} for u in units]


def units_task(spec: dict, part: list, base: int, rule: dict, per_unit: int, tag: list) -> list[dict]:
    return _units(make_adapter(spec), part, base, rule, per_unit, tag)


def candidates_task(spec: dict, part: list, sampling: dict, bucket: int) -> list:
    return bucket_candidates(make_adapter(spec), Part.from_list(part), Sampling(**sampling), bucket)


# --- normalize -> media -> validate -> stage (workers) ------------------------------------------


_PROBES: dict = {}


def probe_for(index, config):
    """The worker's benchmark probe, prepared once per build (not once per unit)."""
    key = id(index)
    if key not in _PROBES:
        _PROBES.clear()
        _PROBES[key] = ContaminationProbe(index, config)
    return _PROBES[key]


def process_unit(
    unit: dict,
    staging_dir: Path,
    *,
    spec: dict,
    recipe_name: str,
    recipe_version: str,
    recipe_sha256: str = "",
    exact_key: str = "both",
    near_config=None,
    probe=None,
) -> dict:
    """Build, validate and stage one unit's samples; return the unit's counts.

    ``exact_key`` names the exact-duplicate key (text, media or both); with ``near_config`` each
    valid row also carries the sample's dedup signature and its compact search keys; with
    ``probe`` (a :class:`~.dedup.decontam.ContaminationProbe`) its benchmark hits.

    Every per-record step (key, build, validation, member names, signature) runs inside the
    record's error handling: a bad record is quarantined with its reason, never the unit. A
    :class:`BuildError` (a configuration or environment fault) stops the build.

    Writes ``<unit>.tar`` (the valid samples' members) and ``<unit>.parquet`` (the rows), then
    ``<unit>.done.json`` (the counts and a fingerprint of every file the unit read): the marker
    comes last, so a unit with a marker is complete and a resumed build skips it unless one of
    those files changed. ``staging_dir`` is made by the driver: a worker orphaned by a killed
    build finds it gone and writes nothing."""
    adapter = make_adapter(spec)
    key_of = get_exact_key(exact_key)
    rows, members = [], []
    with adapter.src.recording() as reads:
        for ordinal, record in unit_records(adapter, unit):
            row = process_record(adapter, unit["source"], ordinal, record, key_of, near_config,
                                  recipe_name, recipe_version, recipe_sha256)  # fmt: skip
            sig = row.pop("_signature", None)
            if row["status"] == "ok":
                row["fragment"] = f"{unit['unit_id']}.tar"
                members += row.pop("_files")
                if sig is not None:
                    row["media_reps"], row["text_bands"] = media_reps(sig, near_config), text_bands(sig, near_config)
                    if probe is not None:
                        hits = probe.rows([sig])
                        row["contam"] = json.dumps(hits) if hits else ""
            row["rank"] = unit["rank"]
            rows.append(_printable(row))
    write_tar(staging_dir / f"{unit['unit_id']}.tar", members, tmp_dir=staging_dir)
    write_outcomes(outcome_path(staging_dir, unit["unit_id"]), rows)
    quarantined = Counter(r["reason"] for r in rows if r["status"] != "ok")
    summary = {"unit_id": unit["unit_id"], "source": unit["source"], "records": len(rows),
               "ok": len(rows) - sum(quarantined.values()),
               "quarantined": dict(sorted(quarantined.items()))}  # fmt: skip
    marker = {"summary": summary, "reads": fingerprints(adapter.root, reads)}
    write_atomic(unit_marker(staging_dir, unit["unit_id"]), json.dumps(marker).encode(), tmp_dir=staging_dir)
    return summary


def process_record(adapter, source, ordinal, record, key_of, near_config, *recipe) -> dict:
    """One record through every per-record step; its outcome row (``_files`` holds the members of
    a sample to write). Only a :class:`BuildError` escapes."""
    row = {"source": source, "ordinal": ordinal, "source_file": record.source_file, "locator": record.locator,
           "key": "", "status": "ok", "reason": "", "detail": "", "fingerprint": "", "content": "", "nbytes": 0,
           "members": [], "fragment": "", "signature": "", "pixels": 0, "media_reps": [], "text_bands": [],
           "contam": ""}  # fmt: skip
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
            pixels=sum(m.size[0] * m.size[1] for m in sample.media if m.size),
            nbytes=sum(len(d) + 1024 for _, d in sample_files),  # + tar header and padding, roughly
            members=[name for name, _ in sample_files],
            _files=sample_files,
        )
        if near_config is not None:
            sig = signature_of(sample, near_config)
            row["signature"], row["_signature"] = json.dumps(sig.to_row()), sig
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
        row.pop("_signature", None)
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
    """What the units a previous (interrupted) run finished left: ``{unit id: {"summary", "reads"}}``."""
    out = {}
    for p in staging_dir.glob("*.done.json"):
        name = p.name[: -len(".done.json")]
        if name.endswith(".tar"):  # a shard's marker
            continue
        try:
            marker = json.loads(p.read_text())
        except ValueError:
            continue
        if isinstance(marker, dict) and "summary" in marker:
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


# --- accounting (driver) ---------------------------------------------------------------------------


def reconcile(stats: dict[str, dict]) -> dict[str, dict]:
    """Check every source's counts: read = written + quarantined (by reason) + duplicates +
    decontaminated, and read = the records the planner selected."""
    for source, s in stats.items():
        removed = sum(s["quarantined"].values()) + s["duplicates"] + s["decontaminated"]
        if s["read"] != s["written"] + removed or s["read"] != s["selected"]:
            raise RuntimeError(f"counts do not reconcile for {source}: {s}")
    return stats


def num_samples_by_dataset(written: dict[str, int], recipe: Recipe) -> dict[str, int]:
    """Written samples per M4 ``metadata.dataset`` (each source names its dataset in its params),
    from the written count of each source."""
    per_source = written
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
