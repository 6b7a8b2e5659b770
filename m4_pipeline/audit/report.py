"""A self-contained static HTML report of a build: distributions, published-count comparison, drops, samples.

One ``index.html`` with inline CSS, JS and SVG and thumbnails as ``data:`` URIs: it opens offline
from disk, can be attached to a review, and holds no link to a CDN. The page is deterministic for
the same shards and options (no timestamps), so two reports can be diffed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path

from ..writer import write_atomic
from . import assets
from .browser import BrowserOptions, browser_html
from .compare import ComparisonRow, summarize
from .stats import Stats

log = logging.getLogger(__name__)

# (histogram, title, unit, trim empty ends)
_PLOTS = (
    ("images_per_sample", "Images per multi-image sample", "", True),
    ("frames_per_video", "Frames per video sample", "", True),
    ("views_per_3d_sample", "Views per 3D sample", "", True),
    ("patches_per_sample", "Patches per single-image sample (base + tiles)", "", True),
    ("placeholders_per_sample", "Placeholders per sample", "", True),
    ("turns_per_conversation", "Turns per conversation", "", True),
    ("text_chars", "Text length per sample", " chars", True),
    ("text_tokens", "Tokens per sample", " tokens", True),
    ("image_width", "Media width", " px", True),
    ("image_height", "Media height", " px", True),
    ("aspect_ratio", "Media aspect ratio (w/h)", "", True),
)
_ST_PLOTS = (
    ("st_temporal_output_locations", "ST temporal output values", "", False),
    ("st_temporal_input_locations", "ST temporal input values", "", False),
    ("st_spatial_width_output_locations", "ST width (x) output values", "", False),
    ("st_spatial_height_output_locations", "ST height (y) output values", "", False),
    ("st_spatial_width_input_locations", "ST width (x) input values", "", False),
    ("st_spatial_height_input_locations", "ST height (y) input values", "", False),
    ("st_span_length", "ST span length (end − start)", "", False),
    ("st_boxes_per_tube", "ST boxes per tube", "", True),
)


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]], numeric: set[int] = frozenset(), flags=()) -> str:
    flags = list(flags)
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = ' class="flag"' if i < len(flags) and flags[i] else ""
        cells = "".join(
            f'<td class="n">{escape(_fmt(v))}</td>' if j in numeric else f"<td>{escape(_fmt(v))}</td>"
            for j, v in enumerate(row)
        )
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _fmt(v: object) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else ""
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.3f}".rstrip("0").rstrip(".") if not v.is_integer() else f"{int(v):,}"
    return str(v)


def _kpis(stats: Stats) -> str:
    items = [
        (stats.samples, "samples"),
        (len(stats.per_dataset), "datasets"),
        (sum(stats.media_kinds.values()), "media items"),
        (stats.unreadable, "unreadable"),
    ]
    if stats.run:
        items += [
            (stats.run.totals.get("read", 0), "records read (manifest)"),
            (sum(stats.run.quarantined_by_reason.values()), "quarantined"),
            (sum(stats.run.duplicates_by_reason.values()), "duplicates removed"),
        ]
    return (
        '<div class="kpis">'
        + "".join(f'<div class="kpi"><b>{v:,}</b><span>{escape(k)}</span></div>' for v, k in items)
        + "</div>"
    )


def _composition(stats: Stats) -> str:
    from .svg import counter_svg

    charts = [
        counter_svg(stats.by("domain"), title="Samples per domain"),
        counter_svg(stats.by("task"), title="Samples per task"),
        counter_svg(stats.by("dataset"), title="Samples per dataset"),
        counter_svg(
            {f"stage {k}" if k not in ("-", "?") else k: v for k, v in stats.by("stage").items()},
            title="Samples per stage (ST; '-' = M4)",
        ),  # fmt: skip
        counter_svg(dict(stats.question_types), title="Question types"),
        counter_svg(dict(stats.placement), title="Placeholder placement (front / interleaved)"),
        counter_svg(dict(stats.media_kinds), title="Media items per kind"),
    ]
    per = stats.to_dict()["per_dataset"]
    rows = [
        (name, r["samples"], r["media_per_sample"], r["turns_per_sample"], r["text_chars_per_sample"],
         r["text_tokens_per_sample"], r["media_bytes"])
        for name, r in per.items()
    ]  # fmt: skip
    table = _table(
        ("dataset", "samples", "media / sample", "turns / sample", "chars / sample", "tokens / sample", "media bytes"),
        rows,
        numeric={1, 2, 3, 4, 5, 6},
    )
    return f'<div class="charts">{"".join(charts)}</div><h3>Per dataset</h3>{table}'


def _distributions(stats: Stats) -> str:
    from .svg import histogram_svg

    plots = [histogram_svg(stats.hists[k], title=t, unit=u, trim=trim) for k, t, u, trim in _PLOTS]
    st = [histogram_svg(stats.hists[k], title=t, unit=u, trim=trim) for k, t, u, trim in _ST_PLOTS if stats.hists[k].n]
    html = f'<p class="note">Token counts: {escape(stats.tokenizer)}.</p><div class="charts">{"".join(plots)}</div>'
    if st:
        html += f'<h3>ST-Align coordinates</h3><div class="charts">{"".join(st)}</div>'
    return html


def _comparison(rows: list[ComparisonRow]) -> str:
    """Rows with something produced first (flagged ones on top); the never-produced targets folded away."""
    verdict = ", ".join(f"{k}: {v}" for k, v in sorted(summarize(rows).items()))
    headers = ("!", "family", "group", "name", "task", "produced", "expected", "published", "ratio", "status", "source")

    def table(subset: list[ComparisonRow]) -> str:
        ordered = sorted(subset, key=lambda r: (not r.out_of_tolerance, r.family, r.group, r.name))
        return _table(
            headers,
            [
                (
                    "!" if r.out_of_tolerance else "",
                    r.family,
                    r.group,
                    r.name,
                    r.task,
                    r.produced,
                    r.expected,
                    r.published,
                    r.ratio,
                    r.status,
                    r.source,
                )
                for r in ordered
            ],  # fmt: skip
            numeric={5, 6, 7, 8},
            flags=[r.out_of_tolerance for r in ordered],
        )

    produced = [r for r in rows if r.produced]
    absent = [r for r in rows if not r.produced]
    html = f'<p>{escape(verdict)} <span class="note">(expected = published × scale)</span></p>{table(produced)}'
    if absent:
        html += (
            f'<details class="more"><summary>{len(absent)} targets with nothing produced</summary>'
            f"{table(absent)}</details>"
        )
    return html


def _run(stats: Stats) -> str:
    run = stats.run
    if run is None:
        return '<p class="note">No manifest.json / quarantine.jsonl / duplicates.jsonl next to the shards.</p>'
    rows, flags = [], []
    for name, c in sorted(run.sources.items()):
        q = sum(v for k, v in c.items() if k.startswith("quarantined:"))
        reasons = ", ".join(f"{k.split(':', 1)[1]}={v}" for k, v in sorted(c.items()) if k.startswith("quarantined:"))
        balanced = c["read"] == c["written"] + q + c["duplicates"]
        rows.append((name, c["read"], c["written"], q, reasons, c["duplicates"], "yes" if balanced else "NO"))
        flags.append(not balanced)
    recon = _table(("source", "read", "written", "quarantined", "by reason", "duplicates", "read = sum"), rows,
                   numeric={1, 2, 3, 5}, flags=flags)  # fmt: skip
    written = run.totals.get("written")
    check = (
        f'<p class="{"ok" if written == stats.samples else "badtxt"}">manifest written = {_fmt(written)}; '
        f"samples found in the shards = {stats.samples:,}</p>"
    )
    q_reasons = _table(("reason", "records"), run.quarantined_by_reason.most_common(), numeric={1})
    d_reasons = _table(("reason", "records"), run.duplicates_by_reason.most_common(), numeric={1})
    q_cols = ("source", "key", "reason", "locator", "detail")
    d_cols = ("source", "key", "duplicate_of", "reason", "locator")
    q_ex = _table(q_cols, ([e.get(c) for c in q_cols] for e in run.quarantine_examples))
    d_ex = _table(d_cols, ([e.get(c) for c in d_cols] for e in run.duplicate_examples))
    return (
        f"{check}<h3>Per source: read = written + quarantined + duplicates</h3>{recon}"
        f'<div class="charts"><div><h3>Quarantine by reason</h3>{q_reasons}</div>'
        f"<div><h3>Duplicates by reason</h3>{d_reasons}</div></div>"
        f"<h3>Quarantined records (first {len(run.quarantine_examples)})</h3>{q_ex}"
        f"<h3>Duplicates (first {len(run.duplicate_examples)})</h3>{d_ex}"
    )


def write_report(
    shards_dir: str | Path,
    out_dir: str | Path,
    stats: Stats,
    comparison: list[ComparisonRow] | None = None,
    *,
    title: str | None = None,
    browser: BrowserOptions | None = None,
) -> Path:
    """Write ``out_dir/index.html`` (one file, everything inline) and return its path."""
    shards_dir, out_dir = Path(shards_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    title = title or f"Dataset audit: {shards_dir.name}"
    cards, n_cards = browser_html(shards_dir, stats, browser)
    sections = [
        ("overview", "Overview", _kpis(stats)),
        ("composition", "Composition", _composition(stats)),
        ("distributions", "Distributions", _distributions(stats)),
    ]
    if comparison is not None:
        sections.append(("comparison", "Produced vs published", _comparison(comparison)))
    sections += [
        ("drops", "Quarantine and duplicates", _run(stats)),
        ("samples", f"Samples ({n_cards})", cards),
    ]
    nav = "".join(f'<a href="#{sid}">{escape(name)}</a>' for sid, name, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{escape(name)}</h2>{html}</section>' for sid, name, html in sections)
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{assets.CSS}</style><script>{assets.ERROR_HOOK}</script></head>"
        f'<body><header class="top"><h1>{escape(title)}</h1><p>{escape(str(shards_dir))} · '
        f"{stats.samples:,} samples · tokens: {escape(stats.tokenizer)}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main><script>{assets.JS}</script></body></html>"
    )
    path = out_dir / "index.html"
    write_atomic(path, page.encode("utf-8"))
    log.info("report: %s (%.1f KiB, %d sample cards)", path, path.stat().st_size / 1024, n_cards)
    return path
