"""Miniatures of declarative sources, written from their ``miniature`` block.

A declarative source's ``miniature`` gives its annotation records as data; this module writes
them in the source's own file format (JSON list, JSON lines, CSV/TSV, parquet, a JSON object by
id, text lines, XML) and then synthesizes every image, video or frame folder those records name
through the source's own mapping, so the miniature has exactly the layout the adapter reads::

    miniature:
      files:       {data/train.json: [{...}, ...]}   # annotation file -> records (or a whole object)
      side_files:  {map.json: {...}, README: text}   # written as they are (JSON for .json)
      video: {frames: 60, fps: 30, size: [160, 96]}  # synthesized videos; frame folders without an extension
      image: {size: [160, 120]}
      image_columns: [source_img]   # parquet: embedded HF images {bytes, path} in these columns (a path
                                    # or null becomes a synthesized image; a list of them, a list of images)
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import re
from pathlib import Path
from typing import Any

from ..errors import SourceError
from ..paths import UnsafePathError, confined_output
from ..synthetic import synthetic_image, write_video
from ..templates import render


def _seed(rel: str, seed: int) -> int:
    return seed + int(hashlib.sha1(rel.encode()).hexdigest()[:6], 16)


def write_records(path: Path, reader: str, records: Any, options: dict) -> None:
    """``records`` in the file format ``reader`` reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if reader == "jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    elif reader in ("json", "json_dict"):
        field = options.get("field")
        obj = {field: records} if field and isinstance(records, list) else records
        if reader == "json_dict" and isinstance(records, list):
            obj = {r["_key"]: {k: v for k, v in r.items() if k != "_key"} for r in records}
            if field:
                obj = {field: obj}
        path.write_text(json.dumps(obj, ensure_ascii=False, indent=1))
    elif reader in ("csv", "tsv"):
        header: list[str] = []
        for r in records:
            header += [k for k in r if k not in header]
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter="\t" if reader == "tsv" else ",")
        writer.writerow(header)
        writer.writerows([[r.get(k, "") for k in header] for r in records])
        path.write_text(buf.getvalue())
    elif reader == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(records), path, row_group_size=options.get("row_group_size", 2))
    elif reader == "lines":
        path.write_text("".join((r["line"] if isinstance(r, dict) else str(r)) + "\n" for r in records))
    elif reader == "xml":
        path.write_text(records if isinstance(records, str) else "")
    else:
        raise ValueError(f"no miniature writer for reader {reader!r}")


def write_side_file(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(value, (dict, list)):
        path.write_text(json.dumps(value, ensure_ascii=False))
    else:
        path.write_text(str(value))


def synthesize(root: Path, rel: str, spec: dict, seed: int, ctx: dict | None = None) -> None:
    """An image (by extension), an H.264 video, or a frame folder (no extension) at ``rel``;
    the video's frame count may be a template of the record (``"{frame_count}"``)."""
    try:
        path = confined_output(root, rel, "miniature media")
    except UnsafePathError:
        return  # a record the miniature keeps hostile on purpose
    if path.exists():
        return
    suffix = path.suffix.lower()
    if suffix in (".jpg", ".jpeg", ".png", ".webp", ".bmp"):
        path.parent.mkdir(parents=True, exist_ok=True)
        size = tuple(spec.get("image", {}).get("size", (160, 120)))
        synthetic_image(_seed(rel, seed), size).save(path, "PNG" if suffix == ".png" else "JPEG")
        return
    video = spec.get("video", {})
    frames = video.get("frames", 60)
    frames = int(render(frames, ctx or {}, rel)) if isinstance(frames, str) else int(frames)
    fps, size = float(video.get("fps", 30)), tuple(video.get("size", (160, 96)))
    if suffix:
        write_video(path, seed=_seed(rel, seed), num_frames=frames, fps=fps, size=size)
        return
    path.mkdir(parents=True, exist_ok=True)  # a frame folder, as LLaVA-Hound's
    for i in range(frames):
        synthetic_image(_seed(rel, seed) + i, size).save(path / f"{i + 1:05d}.jpg", "JPEG")


def _embed_images(record: dict, spec: dict, where: str, seed: int) -> dict:
    """The record with its ``image_columns`` as HF image structs holding synthesized JPEG bytes."""
    size = tuple(spec.get("image", {}).get("size", (160, 120)))

    def struct(path: Any, tag: str) -> dict:
        buf = io.BytesIO()
        synthetic_image(_seed(tag, seed), size).save(buf, "JPEG", quality=90)
        return {"bytes": buf.getvalue(), "path": path}

    out = dict(record)
    for col in spec["image_columns"]:
        value = out.get(col)
        if isinstance(value, list):
            out[col] = [struct(v, f"{where}/{col}/{i}") for i, v in enumerate(value)]
        elif value is None or isinstance(value, str):
            out[col] = struct(value, f"{where}/{col}")
    return out


def _splits_of(params, files: list[str]) -> list[str]:
    """Every split the miniature's files stand for (a miniature may hold more than the default)."""
    splits = list(params.splits)
    for split_over in [None, *(params.by_split or {})]:
        patterns = (
            ((params.by_split or {}).get(split_over) or {}).get("files", params.files) if split_over else params.files
        )
        for pattern in patterns:
            if "{split}" not in pattern:
                continue
            regex = re.escape(pattern).replace(re.escape("{split}"), "(?P<split>[^/]+)")
            for rel in files:
                m = re.fullmatch(regex, rel)
                if m and m.group("split") not in splits:
                    splits.append(m.group("split"))
    return splits


def write_declared_miniature(cls, root: Path, *, seed: int = 0) -> None:
    """The miniature of a declarative source class (its params' ``miniature`` block)."""
    root = Path(root)
    params = cls.Params()
    spec = params.miniature or {}
    if not spec.get("files"):
        raise NotImplementedError(f"{cls.name}: its declaration has no miniature.files")
    for rel, value in (spec.get("side_files") or {}).items():
        write_side_file(confined_output(root, rel), value)
    for rel, records in spec["files"].items():
        if spec.get("image_columns") and isinstance(records, list):
            records = [_embed_images(r, spec, f"{rel}#{i}", seed) for i, r in enumerate(records)]
        write_records(confined_output(root, rel), params.reader, records, params.reader_options)
    adapter = cls(root, dataclasses.replace(params, splits=_splits_of(params, list(spec["files"]))))
    for record in adapter.list_records():
        if record.error is not None:
            continue
        split = adapter._split_of(record.source_file)
        p = adapter._p(split)
        try:
            ctx = adapter._context(record.data, split, record.source_file)
            rels = [render(e, ctx, record.locator) for e in p.images]
            if p.image_list:
                value = adapter._eval(p.image_list, ctx, record.locator)
                rels += [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
            if p.video:
                rels.append(render(p.video, ctx, record.locator))
        except SourceError:
            continue  # a record the miniature keeps bad on purpose
        for rel in rels:
            synthesize(root, rel, spec, seed, ctx)
