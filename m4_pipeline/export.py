"""Exports of built shards into the layouts the consuming trainers read unchanged.

- ``llava-json``: the released M4-Instruct layout: one JSON list of records plus the image files
  at the records' relative paths (LLaVA-NeXT's trainer: ``--data_path`` the JSON,
  ``--image_folder`` the ``images/`` folder).
- ``st-align``: per-stage JSON files and the stage YAML (``datasets: [{json_path,
  sampling_strategy, source, data_folder}]``) that LLaVA-ST's trainer reads, with each video
  written as an mp4 of exactly its 100 sampled frames (``meta.split`` becomes ``[0, 99]``, so the
  trainer's 100-frame rule picks exactly those frames; the source range stays in
  ``meta.source_split``).
- ``parquet``: one file per shard, loadable with ``datasets.load_dataset("parquet", ...)``.

The shards themselves load with ``datasets.load_dataset("webdataset", ...,
features=webdataset_features(shards))``: samples carry different numbers of media members,
which HF's loader cannot infer from the first few samples, so the features are declared.
"""

from __future__ import annotations

import json
import logging
import subprocess
import tarfile
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

from PIL import Image

from .formats import to_record, to_shard_json
from .inspect_shards import iter_samples, shard_paths
from .media.images import encode_jpeg, open_image
from .media.video import ffmpeg_binary
from .sample import Sample

log = logging.getLogger(__name__)


def export_llava_json(shards: str | Path, out: str | Path, *, name: str = "m4_instruct_annotations.json") -> dict:
    """M4 samples as one JSON list + ``images/<record path>``; ST samples are left to st-align."""
    out = Path(out)
    images = out / "images"
    records, skipped = [], Counter()
    for _, sample, error in iter_samples(shard_paths(shards)):
        if sample is None or error:
            skipped["unreadable"] += 1
            continue
        if sample.family != "m4" or not isinstance(sample.record.get("image", []), list):
            skipped[f"family {sample.family}" if sample.family != "m4" else "video record"] += 1
            continue
        for rel, data in zip(sample.record.get("image", []), _slot_images(sample)):
            _write_once(images / rel, data)
        records.append(to_record(sample))
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_text(json.dumps(records, ensure_ascii=False))
    return {"records": len(records), "json": str(out / name), "image_folder": str(images), "skipped": dict(skipped)}


def export_st_align(
    shards: str | Path, out: str | Path, *, stages: dict[str, int] | None = None, default_stage: int = 3
) -> dict:
    """ST samples as ``stage<N>/<dataset>.json`` + ``stage<N>.yaml``, media under ``data/``.

    ``stages`` maps a source (provenance dataset) to its training stage (STVG, SVG and ELC, the
    tasks built here, are stage 3)."""
    out = Path(out)
    data = out / "data"
    by_file: dict[tuple[int, str], list[dict]] = defaultdict(list)
    skipped = Counter()
    for _, sample, error in iter_samples(shard_paths(shards)):
        if sample is None or error or sample.family != "st":
            skipped["unreadable" if sample is None or error else f"family {sample.family}"] += 1
            continue
        record = to_record(sample)
        if "video" in record:
            rel = f"videos/{sample.key}.mp4"
            _frames_to_mp4([m.data for m in sample.media], data / rel)
            meta = dict(record.get("meta") or {})
            if "split" in meta:
                meta["source_split"] = meta["split"]
            meta["split"] = [0, len(sample.media) - 1]
            record["video"], record["meta"] = rel, meta
        elif "image" in record:
            paths = record["image"] if isinstance(record["image"], list) else [record["image"]]
            for rel, blob in zip(paths, _slot_images(sample)):
                _write_once(data / rel, blob)
        dataset = sample.provenance.dataset if sample.provenance else "st"
        stage = (stages or {}).get(dataset, default_stage)
        by_file[(stage, dataset)].append(record)
    yamls = {}
    for stage in sorted({s for s, _ in by_file}):
        entries = []
        for (s, dataset), records in sorted(by_file.items()):
            if s != stage:
                continue
            json_path = out / f"stage{stage}" / f"{dataset}.json"
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(records, ensure_ascii=False))
            entries.append(
                f"  - json_path: {json_path}\n    sampling_strategy: all\n    source: {dataset}\n"
                f"    data_folder: {data}\n"
            )
        yamls[stage] = out / f"stage{stage}.yaml"
        yamls[stage].write_text("datasets:\n" + "".join(entries))
    return {
        "records": sum(len(r) for r in by_file.values()),
        "stage_yamls": {k: str(v) for k, v in yamls.items()},
        "skipped": dict(skipped),
    }


def export_parquet(shards: str | Path, out: str | Path) -> dict:
    """One parquet file per shard: key, family, dataset, record (JSON text), media, media_ext."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files, total = [], 0
    schema = pa.schema([
        ("key", pa.string()), ("family", pa.string()), ("dataset", pa.string()), ("record", pa.string()),
        ("media", pa.list_(pa.binary())), ("media_ext", pa.list_(pa.string())),
    ])  # fmt: skip
    for shard in shard_paths(shards):
        rows = {name: [] for name in schema.names}
        for _, sample, error in iter_samples([shard]):
            if sample is None or error:
                continue
            rows["key"].append(sample.key)
            rows["family"].append(sample.family)
            rows["dataset"].append(sample.provenance.dataset if sample.provenance else "")
            rows["record"].append(json.dumps(to_shard_json(sample), ensure_ascii=False))
            rows["media"].append([m.data for m in sample.media])
            rows["media_ext"].append([m.ext for m in sample.media])
        path = out / (shard.stem + ".parquet")
        pq.write_table(pa.table(rows, schema=schema), path)
        files.append(str(path))
        total += len(rows["key"])
    return {"rows": total, "files": files}


def webdataset_features(shards: str | Path):
    """HF ``Features`` covering every member of the shards (``json`` + ``<i>.<ext>`` images)."""
    from datasets import Features, Image, Json, Value

    fields: set[str] = set()
    for shard in shard_paths(shards):
        with tarfile.open(shard) as tf:
            for name in tf.getnames():
                fields.add(name.split(".", 1)[1])
    features = {"__key__": Value("string"), "__url__": Value("string"), "json": Json()}
    for field in sorted(f for f in fields if f != "json"):
        features[field] = Image()
    return Features(features)


# --- helpers -----------------------------------------------------------------------------------


def _slot_images(sample: Sample) -> list[bytes]:
    """One encoded image per placeholder slot: the image / frame / view itself, or for a tiled
    single image the best-fit canvas re-assembled from its patches (what anyres re-tiles)."""
    by_slot: dict[int, list] = defaultdict(list)
    for m in sample.media:
        by_slot[m.slot].append(m)
    out = []
    for slot in sorted(by_slot):
        media = by_slot[slot]
        tiles = [m for m in media if m.kind == "patch" and m.grid is not None]
        if not tiles:
            out.append(media[0].data)
            continue
        rows = 1 + max(m.grid[0] for m in tiles)
        cols = 1 + max(m.grid[1] for m in tiles)
        size = tiles[0].size or [384, 384]
        canvas = Image.new("RGB", (cols * size[0], rows * size[1]))
        for m in tiles:
            canvas.paste(open_image(m.data, sample.key), (m.grid[1] * size[0], m.grid[0] * size[1]))
        out.append(encode_jpeg(canvas))
    return out


def _write_once(path: Path, data: bytes) -> None:
    """Write a media file; samples that share a path share the same bytes, so skip repeats."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _frames_to_mp4(frames: list[bytes], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for i, data in enumerate(frames):
            (Path(tmp) / f"{i:05d}.jpg").write_bytes(data)
        cmd = [ffmpeg_binary(), "-loglevel", "error", "-y", "-framerate", "10", "-i", str(Path(tmp) / "%05d.jpg"),
               "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2", "-c:v", "libx264", "-crf", "16", "-pix_fmt", "yuv420p",
               "-bitexact", "-map_metadata", "-1", str(path)]  # fmt: skip
        subprocess.run(cmd, check=True)
