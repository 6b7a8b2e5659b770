"""Accounting and reports of a build, streamed from its outcome files (no Ray here).

Counts reconcile per source (read = written + quarantined by reason + duplicates +
decontaminated); ``quarantine.jsonl`` comes from the outcome files in listing order, merged
with the key collisions the final pass found; every report is written atomically and
``index.json`` last, listing every file of the build.
"""

from __future__ import annotations

import heapq
import json
import os
import resource
import time
from collections import Counter
from pathlib import Path

from . import __version__
from .outcomes import FinalPass, iter_outcome_rows
from .process import reconcile
from .recipe import Recipe
from .writer import ShardPlan, dump_json, write_atomic, write_lines

OUTPUTS = ("manifest.json", "quarantine.jsonl", "duplicates.jsonl", "near_duplicates.jsonl",
           "decontamination.jsonl", "index.json")  # fmt: skip


def account(recipe, listing: dict, units: list[dict], summaries: dict, final: FinalPass) -> dict[str, dict]:
    """Per-source counts that reconcile: read = written + quarantined (by reason) + duplicates
    + decontaminated."""
    stats = {}
    for src in recipe.sources:
        quarantined: Counter = Counter()
        read = 0
        for u in units:
            if u["source"] == src.name:
                s = summaries[u["unit_id"]]
                read += s["records"]
                quarantined.update(s["quarantined"])
        quarantined.update(c["reason"] for c in final.collisions if c["source"] == src.name)
        counts = final.counts.get(src.name, {"written": 0, "duplicates": 0, "decontaminated": 0})
        stats[src.name] = {"listed": listing[src.name]["listed"], "selected": listing[src.name]["selected"],
                           "read": read, "written": counts["written"], "quarantined": dict(sorted(quarantined.items())),
                           "duplicates": counts["duplicates"], "decontaminated": counts["decontaminated"]}  # fmt: skip
    reconcile(stats)
    for s in stats.values():
        s.pop("selected")
    return stats


# --- reports -------------------------------------------------------------------------------------

QUARANTINE_COLUMNS = ["source", "rank", "ordinal", "source_file", "locator", "key", "reason", "detail"]


def write_quarantine(out_dir: Path, staging: Path, files: list[Path], collisions: list[dict]) -> int:
    """quarantine.jsonl, in listing order (source, position), streamed from the outcome files."""
    rows = heapq.merge(
        iter_outcome_rows(files, QUARANTINE_COLUMNS, status="quarantined"),
        sorted(collisions, key=lambda c: (c["rank"], c["ordinal"])),
        key=lambda r: (r["rank"], r["ordinal"]),
    )
    keys = ("source", "source_file", "locator", "key", "reason", "detail")
    lines = (dump_json({k: r.get(k, "") for k in keys}) + b"\n" for r in rows)
    return write_lines(out_dir / "quarantine.jsonl", lines, tmp_dir=staging)


def write_reports(out_dir: Path, staging: Path, recipe: Recipe, files, final, stats, shards, started, reports,
                   extra_outputs, data_roots: dict[str, str]) -> dict:  # fmt: skip
    """The reports, each written atomically; ``index.json`` last, listing every file of the build."""
    written: dict[str, int | None] = {"quarantine.jsonl": write_quarantine(out_dir, staging, files, final.collisions)}

    def put(name: str, data: bytes) -> None:
        write_atomic(out_dir / name, data, tmp_dir=staging)
        written[name] = len(data)

    os.replace(staging / "duplicates.part", out_dir / "duplicates.jsonl")
    written["duplicates.jsonl"] = (out_dir / "duplicates.jsonl").stat().st_size
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
        "phase_seconds": reports.get("phase_seconds", {}),  # start_and_list, process, dedup, final_pass, write
        "samples_per_second": round(totals["written"] / wall, 3) if wall > 0 else None,
        "driver_peak_rss_mb": round(peak_rss_mb(), 1),
        "data_roots": data_roots,  # where video references resolve (m4_pipeline.media.refs)
    }
    put("manifest.json", (json.dumps(manifest, indent=2) + "\n").encode())
    written["manifest.json"] = None  # its timings vary from run to run: the index stays byte-identical
    files_ = [{"name": n, "bytes": b} for n, b in sorted(written.items())]
    files_ += [{"name": n, "bytes": None} for n in extra_outputs]
    index = {
        "shards": [{k: s[k] for k in ("name", "samples", "bytes", "sha256", "first_key", "last_key")} for s in shards],
        "files": files_,
    }
    put("index.json", (json.dumps(index, indent=2) + "\n").encode())  # written last
    return manifest


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM; ru_maxrss would carry a parent's across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_plan(staging: Path, name: str) -> ShardPlan:
    return ShardPlan(**json.loads((staging / "plans" / f"{name}.json").read_text()))
