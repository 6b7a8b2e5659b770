"""Tiny inline-SVG charts (bar charts of histograms and counters), so the report needs no plotting library.

Plain strings with every label escaped; sizes are fixed in the viewBox and the SVG scales with CSS.
"""

from __future__ import annotations

from html import escape

from .hist import Histogram

BAR = "#4c78a8"
FLAG = "#e45756"
MUTED = "#888"


def _num(v: float) -> str:
    if float(v).is_integer():
        return f"{int(v):,}"
    return f"{v:g}"


def _nice_max(v: int) -> int:
    """A round axis top at or above v (1, 2, 5 × 10^k)."""
    if v <= 0:
        return 1
    mag = 10 ** (len(str(int(v))) - 1)
    for m in (1, 2, 5, 10):
        if v <= m * mag:
            return m * mag
    return 10 * mag


def histogram_svg(hist: Histogram, *, title: str, unit: str = "", trim: bool = True, width: int = 560) -> str:
    """Vertical bars, one per bin; under/overflow bins appear only when they hold something.

    ``trim`` drops empty bins at both ends (count histograms); keep it off for [0, 1]
    coordinates so two reports show the same axis.
    """
    bins = hist.bins()
    labels = []
    for lo, hi, _ in bins:
        if lo is None:
            labels.append(f"<{_num(hi)}")
        elif hi is None:
            labels.append(f"≥{_num(lo)}")
        else:
            labels.append(_num(lo))
    items = list(zip(labels, [c for _, _, c in bins]))
    inner = items[1:-1]
    if trim:
        nz = [i for i, (_, c) in enumerate(inner) if c]
        inner = inner[nz[0] : nz[-1] + 1] if nz else []
    items = ([items[0]] if items[0][1] else []) + inner + ([items[-1]] if items[-1][1] else [])
    height, left, bottom, top = 210, 44, 34, 36
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="{left}" y="16" class="ct">{escape(title)}</text>',
    ]
    if not items:
        parts.append(f'<text x="{left}" y="{height // 2}" class="cm">no values</text></svg>')
        return "".join(parts)
    peak = _nice_max(max(c for _, c in items))
    plot_w, plot_h = width - left - 10, height - top - bottom
    bw = min(plot_w / len(items), 48.0)
    every = max(1, round(len(items) / 12))
    for frac in (0, 0.5, 1):
        y = top + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" class="ax" text-anchor="end">{_num(peak * frac)}</text>')
    for i, (label, count) in enumerate(items):
        h = plot_h * count / peak
        x = left + i * bw
        edge = label.startswith(("<", "≥"))
        color = FLAG if edge else BAR
        tip = escape(f"{label}{unit}: {count:,}")
        parts.append(
            f'<rect x="{x + 0.5:.1f}" y="{top + plot_h - h:.1f}" width="{max(bw - 1, 0.5):.1f}" '
            f'height="{h:.1f}" fill="{color}"><title>{tip}</title></rect>'
        )
        if i % every == 0 or edge:
            parts.append(
                f'<text x="{x + bw / 2:.1f}" y="{height - bottom + 14}" class="ax" '
                f'text-anchor="middle">{escape(label)}</text>'
            )
    stats = f"n={hist.n:,}"
    if hist.n:
        stats += f"  mean={hist.mean:.3g}  min={_num(hist.min)}  max={_num(hist.max)}"
    parts.append(f'<text x="{left}" y="29" class="cm">{escape(stats)}</text>')
    parts.append(f'<text x="{left}" y="{height - 4}" class="cm">{escape(unit.strip())}</text>')
    parts.append("</svg>")
    return "".join(parts)


def counter_svg(counts: dict[str, int], *, title: str, width: int = 560, max_rows: int = 24) -> str:
    """Horizontal bars, largest first; the rest folded into one "other" row past ``max_rows``."""
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    if len(items) > max_rows:
        rest = sum(n for _, n in items[max_rows - 1 :])
        items = items[: max_rows - 1] + [(f"other ({len(counts) - max_rows + 1})", rest)]
    row_h, top, label_w = 20, 26, 230
    height = top + row_h * max(len(items), 1) + 8
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="4" y="16" class="ct">{escape(title)}</text>',
    ]
    if not items:
        parts.append(f'<text x="4" y="{top + 14}" class="cm">nothing counted</text></svg>')
        return "".join(parts)
    peak = max(n for _, n in items) or 1
    total = sum(n for _, n in items) or 1
    bar_w = width - label_w - 90
    for i, (label, n) in enumerate(items):
        y = top + i * row_h
        w = bar_w * n / peak
        short = label if len(label) <= 34 else label[:33] + "…"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 14}" class="ax" text-anchor="end">{escape(short)}'
            f"<title>{escape(label)}</title></text>"
        )
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{max(w, 1):.1f}" height="{row_h - 6}" fill="{BAR}"/>')
        parts.append(f'<text x="{label_w + w + 6:.1f}" y="{y + 14}" class="ax">{n:,} ({100 * n / total:.0f}%)</text>')
    parts.append("</svg>")
    return "".join(parts)
