"""The report's sample browser: a few samples per dataset rendered as conversations with their media inline.

Media become small JPEG thumbnails in ``data:`` URIs, so the report is one file that works
offline; the size stays bounded by ``samples_per_dataset`` × ``media_per_sample`` thumbnails of
at most ``thumb_px`` pixels. ST coordinate tokens are shown with their values (and the LAPE bin
they decode to); tube boxes are drawn over the frames they belong to.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from html import escape
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from ..coords import lape_bin
from ..errors import MediaError
from ..formats import to_shard_json
from ..inspect_shards import iter_samples, shard_paths
from ..media.images import encode_jpeg
from ..media.refs import DataRoots, video_frames
from ..sample import Media, Sample
from . import text as tx
from .stats import Stats, sample_group

log = logging.getLogger(__name__)

_MARKUP = re.compile(rf"{tx.PLACEHOLDER.pattern}|{tx.COORD_TOKEN.pattern}")
_AXIS_SHORT = {"TEMP": "t", "WIDTH": "x", "HEIGHT": "y"}


@dataclass(frozen=True)
class BrowserOptions:
    samples_per_dataset: int = 4
    media_per_sample: int = 8
    thumb_px: int = 160
    record_chars: int = 3000  # the record JSON shown under each card is cut here


def pick_samples(shards: str | Path, stats: Stats, per_dataset: int) -> list[Sample]:
    """The first ``per_dataset`` samples of each dataset, in shard order; stops once every dataset has them."""
    want = {name: min(per_dataset, n) for name, n in stats.by("dataset").items()}
    picked: dict[str, list[Sample]] = defaultdict(list)
    for _, sample, _ in iter_samples(shard_paths(shards)):
        if sample is None:
            continue
        group = sample_group(sample, stats.targets)
        dataset = group[4]
        if len(picked[dataset]) < want.get(dataset, per_dataset):
            picked[dataset].append(sample)
        if want and all(len(picked[d]) >= n for d, n in want.items()):
            break
    return [s for d in sorted(picked) for s in picked[d]]


def thumbnail_uri(media: Media, px: int) -> str | None:
    """A JPEG ``data:`` URI of the media downscaled to fit px×px; None if the bytes do not decode."""
    try:
        with Image.open(io.BytesIO(media.data)) as img:
            img = img.convert("RGB")
            img.thumbnail((px, px))
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=75)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        log.warning("cannot thumbnail a %s (%d bytes): %s", media.kind, len(media.data), err)
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _frame_times(sample: Sample) -> list[float | None]:
    """Each frame's position in ``meta.split`` as [0, 1] (the time scale of ST temporal values)."""
    split = (sample.record.get("meta") or {}).get("split")
    frames = [m for m in sample.media if m.kind == "frame"]
    out: list[float | None] = []
    for i, m in enumerate(frames):
        if isinstance(split, list) and len(split) == 2 and split[1] > split[0] and m.frame_index is not None:
            out.append((m.frame_index - split[0]) / (split[1] - split[0]))
        else:
            out.append(i / max(1, len(frames) - 1))
    return out


def _evenly(n: int, k: int) -> list[int]:
    return [round(i * (n - 1) / max(1, k - 1)) for i in range(k)]


def _choose_media(sample: Sample, limit: int, boxes: list) -> list[int]:
    """Indices to show: all if few; else up to half on the frames that carry tube boxes, the rest evenly spread."""
    n = len(sample.media)
    if n <= limit:
        return list(range(n))
    picked: set[int] = set()
    if boxes and sample.family == "st":
        times = _frame_times(sample)
        with_box = [i for i, t in enumerate(times) if t is not None and _box_for(t, boxes)]
        picked = {with_box[j] for j in _evenly(len(with_box), min(len(with_box), limit // 2))} if with_box else set()
    k = limit - len(picked)
    while len(picked) < limit and k <= n:
        candidates = set(_evenly(n, k))
        if len(picked | candidates) >= limit:
            extra = sorted(candidates - picked)
            picked |= set(extra[: limit - len(picked)])
            break
        k += 1
    return sorted(picked)


def _box_for(time: float, boxes: list[tuple[float | None, list[float]]]) -> list[float] | None:
    best = min((abs(t - time), quad) for t, quad in boxes if t is not None) if boxes else None
    return best[1] if best and best[0] <= 0.006 else None


def _with_frames(sample: Sample, roots: DataRoots) -> Sample:
    """The sample with a clip (or a video reference whose source is at hand) shown as its frames."""
    video = next((m for m in sample.media if m.kind in ("clip", "video")), None)
    if video is None:
        return sample
    try:
        pixels = video_frames([video], roots)
    except MediaError as err:
        log.info("%s: its video is not shown: %s", sample.key, err)
        return sample
    frames = [Media("frame", video.slot, encode_jpeg(px), "jpg", frame_index=i, timestamp=t,
                    size=[px.shape[1], px.shape[0]])
              for px, i, t in zip(pixels, video.frames, video.times())]  # fmt: skip
    return dataclasses.replace(sample, media=[m for m in sample.media if m is not video] + frames)


def _caption(m: Media) -> str:
    if m.kind == "video" and m.ref:
        return f"reference {m.ref['path']} ({len(m.frames or [])} frames)"
    if m.kind == "frame":
        ts = f" {m.timestamp:.2f}s" if m.timestamp is not None else ""
        return f"frame {m.frame_index}{ts}"
    if m.kind == "patch":
        return "base" if m.grid is None else f"tile {m.grid[0]},{m.grid[1]}"
    return f"{m.kind} #{m.slot}"


def _media_html(sample: Sample, opts: BrowserOptions) -> str:
    boxes = tx.tube_boxes(sample) if sample.family == "st" else []
    shown = _choose_media(sample, opts.media_per_sample, boxes)
    times = _frame_times(sample) if sample.family == "st" else []
    frame_pos = {id(m): i for i, m in enumerate(x for x in sample.media if x.kind == "frame")}
    figs = []
    for i in shown:
        m = sample.media[i]
        uri = thumbnail_uri(m, opts.thumb_px)
        img = f'<img src="{uri}" alt="{escape(m.kind)} {i}">' if uri else '<div class="bad">undecodable</div>'
        overlay = ""
        quad = None
        if sample.family == "st" and m.kind == "frame" and id(m) in frame_pos:
            t = times[frame_pos[id(m)]]
            quad = _box_for(t, boxes) if t is not None else None
        elif sample.family == "st" and m.kind == "image":
            quad = next((q for t, q in boxes if t is None), None)
        if quad:
            x1, y1, x2, y2 = quad
            overlay = (
                f'<div class="box" style="left:{100 * x1:.1f}%;top:{100 * y1:.1f}%;'
                f'width:{100 * (x2 - x1):.1f}%;height:{100 * (y2 - y1):.1f}%" '
                f'title="[{x1}, {y1}, {x2}, {y2}]"></div>'
            )
        size = f"{m.size[0]}×{m.size[1]}" if m.size else "?"
        figs.append(
            f'<figure class="m {m.kind}"><div class="frame">{img}{overlay}</div>'
            f"<figcaption>{escape(_caption(m))} · {size}</figcaption></figure>"
        )
    note = (
        f'<div class="note">{len(shown)} of {len(sample.media)} media shown</div>'
        if len(shown) < len(sample.media)
        else ""
    )
    return f'<div class="media">{"".join(figs)}</div>{note}'


def _turn_html(ti: int, value: str, tokens: dict[tuple[int, int], tx.CoordToken], slot: list[int]) -> str:
    """The turn's text, escaped, with placeholders numbered by slot and coordinate tokens as value chips."""
    out, last = [], 0
    for m in _MARKUP.finditer(value):
        between = value[last : m.start()]
        if between.endswith("], ") and m.group(1) == "TEMP":
            out.append(escape(between.rstrip()) + "<br>")  # one tube box per line
        else:
            out.append(escape(between))
        last = m.end()
        if m.group(0) in ("<image>", "<video>"):
            out.append(f'<span class="ph" title="media slot {slot[0]}">{escape(m.group(0))}<sub>{slot[0]}</sub></span>')
            slot[0] += 1
            continue
        tok = tokens.get((ti, m.start()))
        raw = escape(m.group(0))
        if tok is None or tok.value is None:
            out.append(f'<span class="tok missing" title="no value in variables">{raw}</span>')
            continue
        lape = f"<{tok.axis}-{lape_bin(tok.value):03d}>"
        tip = escape(f"{m.group(0)} = {tok.value} ({tok.variable}[{tok.index}]; LAPE {lape})")
        out.append(
            f'<span class="tok {tok.axis.lower()}" title="{tip}"><span class="raw">{raw}</span>'
            f'<span class="val">{_AXIS_SHORT[tok.axis]}={tok.value:g}</span></span>'
        )
    out.append(escape(value[last:]))
    return "".join(out).replace("\n", "<br>")


def card_html(sample: Sample, stats: Stats, opts: BrowserOptions) -> str:
    """One sample as an ``<article class="card">`` with ``data-*`` attributes for the filter."""
    family, domain, stage, task, dataset = sample_group(sample, stats.targets)
    tokens = {(t.turn, t.start): t for t in tx.coord_tokens(sample)} if family == "st" else {}
    slot = [0]
    turns = []
    for ti, turn in enumerate(sample.conversations):
        role = turn.role if turn.role in ("human", "gpt") else "other"
        turns.append(
            f'<div class="turn {role}"><div class="who">{escape(turn.role)}</div>'
            f'<div class="bubble">{_turn_html(ti, turn.value, tokens, slot)}</div></div>'
        )
    meta = sample.record.get("metadata") if isinstance(sample.record.get("metadata"), dict) else {}
    tags = [dataset, task, domain, f"stage {stage}" if family == "st" else "", meta.get("question_type") or ""]
    tags.append(tx.placeholder_placement(sample))
    tag_html = "".join(f'<span class="tag">{escape(str(t))}</span>' for t in tags if t)
    record = to_shard_json(sample)
    prov = record.get("provenance") or {}
    if isinstance(prov.get("media"), list) and len(prov["media"]) > 3:
        prov["media"] = prov["media"][:3] + [f"... {len(prov['media']) - 3} more"]
    text = json.dumps(record, ensure_ascii=False, indent=1)
    if len(text) > opts.record_chars:
        text = text[: opts.record_chars] + "\n... (cut)"
    search = " ".join([sample.key, dataset, task, sample.text()[:2000]]).lower()
    attrs = {"dataset": dataset, "task": task, "domain": domain, "family": family, "text": search}
    data = " ".join(f'data-{k}="{escape(v)}"' for k, v in attrs.items())
    return (
        f'<article class="card" {data}><header><code class="key">{escape(sample.key)}</code>{tag_html}</header>'
        f'{_media_html(sample, opts)}<div class="conv">{"".join(turns)}</div>'
        f"<details><summary>record</summary><pre>{escape(text)}</pre></details></article>"
    )


def browser_html(shards: str | Path, stats: Stats, opts: BrowserOptions | None = None) -> tuple[str, int]:
    """(HTML of the browser section, number of cards)."""
    opts = opts or BrowserOptions()
    samples = [
        _with_frames(s, DataRoots.for_shards(shards)) for s in pick_samples(shards, stats, opts.samples_per_dataset)
    ]
    cards = [card_html(s, stats, opts) for s in samples]
    datasets = sorted({sample_group(s, stats.targets)[4] for s in samples})
    tasks = sorted({sample_group(s, stats.targets)[3] for s in samples})

    def options(values: list[str]) -> str:
        return "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values)

    controls = (
        '<div class="filters">'
        f'<label>dataset <select id="f-dataset"><option value="">all</option>{options(datasets)}</select></label>'
        f'<label>task <select id="f-task"><option value="">all</option>{options(tasks)}</select></label>'
        '<label>text <input id="f-text" type="search" placeholder="key or words"></label>'
        '<label><input id="f-raw" type="checkbox"> raw ST tokens</label>'
        f'<span id="f-count">{len(cards)} samples</span></div>'
    )
    note = (
        f'<p class="note">Up to {opts.samples_per_dataset} samples per dataset, up to {opts.media_per_sample} '
        f"media each, thumbnails ≤ {opts.thumb_px}px. ST tokens show their value; hover for the variable "
        "and LAPE bin. Red boxes: the tube box of that frame.</p>"
    )
    return controls + note + f'<div id="cards">{"".join(cards)}</div>', len(cards)
