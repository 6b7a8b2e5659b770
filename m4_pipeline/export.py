"""Exports of built shards into the layouts the consuming trainers read unchanged.

- ``llava-json``: the released M4-Instruct layout: one JSON list of records plus the image files
  at the records' relative paths (LLaVA-NeXT's trainer: ``--data_path`` the JSON,
  ``--image_folder`` the ``images/`` folder).
- ``st-align``: per-stage JSON files and the stage YAML (``datasets: [{json_path,
  sampling_strategy, source, data_folder}]``) that LLaVA-ST's trainer reads. A video reference
  stays the release's form (the source video under its data root, ``meta.split`` the source
  range); a video stored as frames or a clip is written as an mp4 of exactly its 100 sampled
  frames (``meta.split`` becomes ``[0, 99]``, so the trainer's 100-frame rule picks exactly those
  frames; the source range stays in ``meta.source_split``).
- ``parquet``: one file per shard, loadable with ``datasets.load_dataset("parquet", ...)``, which
  shows the record as a dict (a ``Json`` column) and the media as images.

Each export runs one Ray task per shard (media and a fragment of the records per task); the
driver joins the fragments in shard order, streamed, so the output is the same whatever the
worker count and the records are never all in one process. Every file is written inside the
export folder: a path from a shard (untrusted) that would leave it is skipped as ``unsafe_path``.

The shards themselves load with ``datasets.load_dataset("webdataset", ...,
features=webdataset_features(shards))``: samples carry different numbers of media members,
which HF's loader cannot infer from the first few samples, so the features are declared.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections import Counter, defaultdict
from functools import partial
from pathlib import Path

import yaml
from PIL import Image

from .errors import SourceError
from .formats import to_record, to_shard_json
from .inspect_shards import iter_samples, shard_paths
from .media.images import encode_jpeg, open_image
from .media.refs import DataRoots
from .media.video import ffmpeg_binary
from .paths import confined_output
from .sample import Sample
from .writer import write_atomic

log = logging.getLogger(__name__)
PARTS = ".export-parts"  # per-shard fragments of the output files, removed once joined


def _per_shard(fn, shards: str | Path, progress: bool, cluster: dict | None) -> list:
    """``fn(shard)`` for every shard, one Ray task each, results in shard order: the shards are
    independent, each task writes its own media and a fragment of the records."""
    from .executor import map_shards

    return map_shards(fn, shard_paths(shards), progress=progress, **(cluster or {}))


def _fragment(out: Path, shard: Path, name: str, records: list[dict]) -> str:
    """A shard's records for one output file: JSON objects joined by ``, `` (a list without its
    brackets), joined to the others by :func:`_join_lists`."""
    path = out / PARTS / shard.stem / name
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, ", ".join(json.dumps(r, ensure_ascii=False) for r in records).encode())
    return str(path)


def _join_lists(fragments: list[str], target: Path) -> None:
    """One JSON list (what ``json.dumps(records)`` writes) from fragments in order, streamed: the
    records are never all in memory."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(b"[")
            first = True
            for fragment in fragments:
                if os.path.getsize(fragment) == 0:
                    continue
                f.write(b"" if first else b", ")
                with open(fragment, "rb") as src:
                    shutil.copyfileobj(src, f)
                first = False
            f.write(b"]")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def export_llava_json(shards: str | Path, out: str | Path, *, name: str = "m4_instruct_annotations.json",
                      progress: bool = False, cluster: dict | None = None) -> dict:  # fmt: skip
    """M4 samples as one JSON list + ``images/<record path>``; ST samples are left to st-align.
    One Ray task per shard (``cluster``: ``ray_address`` / ``num_cpus``).

    Every file is written inside ``out``: a record whose image path would leave ``images/`` (an
    absolute or ``..`` path in a shard) is skipped and counted as ``unsafe_path``."""
    out = Path(out).absolute()
    target = confined_output(out, name, "annotation file")
    results = _per_shard(partial(_llava_shard, out=out), shards, progress, cluster)
    _join_lists([r["fragment"] for r in results], target)
    shutil.rmtree(out / PARTS, ignore_errors=True)
    return {"records": sum(r["records"] for r in results), "json": str(target), "image_folder": str(out / "images"),
            "skipped": dict(sum((Counter(r["skipped"]) for r in results), Counter()))}  # fmt: skip


def _llava_shard(shard: Path, *, out: Path) -> dict:
    images = out / "images"
    records, skipped = [], Counter()
    for _, sample, error in iter_samples([shard]):
        if sample is None or error:
            skipped["unreadable"] += 1
            continue
        if sample.family != "m4" or not isinstance(sample.record.get("image", []), list):
            skipped[f"family {sample.family}" if sample.family != "m4" else "video record"] += 1
            continue
        try:
            targets = [confined_output(images, rel, "image path") for rel in sample.record.get("image", [])]
        except SourceError as err:
            log.warning("%s: skipped: %s", sample.key, err)
            skipped["unsafe_path"] += 1
            continue
        for target, data in zip(targets, _slot_images(sample)):
            _write_once(target, data, out)
        records.append(to_record(sample))
    return {"records": len(records), "skipped": dict(skipped), "fragment": _fragment(out, shard, "llava", records)}


def export_st_align(
    shards: str | Path,
    out: str | Path,
    *,
    stages: dict[str, int] | None = None,
    default_stage: int = 3,
    relative: bool = False,
    progress: bool = False,
    data_roots: dict[str, str] | None = None,
    cluster: dict | None = None,
) -> dict:
    """ST samples as ``stage<N>/<source>.json`` + ``stage<N>.yaml``, media under ``data/``; one
    Ray task per shard (``cluster``: ``ray_address`` / ``num_cpus``).

    A video stored as frames becomes an mp4 of exactly those frames, a clip is written as it
    is (both with ``meta.split`` ``[0, 99]``, the source range kept in ``meta.source_split``); a
    video *reference* stays the release's own form: ``video`` is the source video's path under
    its data root (the entry's ``data_folder``) and ``meta.split`` the source frame range.

    ``stages`` maps a source (provenance dataset) to its training stage (STVG, SVG and ELC, the
    tasks built here, are stage 3). Each stage YAML holds one entry per source, as LLaVA-ST's
    trainer expects; its ``json_path`` and ``data_folder`` are absolute (the trainer opens them
    from its own working directory), or with ``relative`` relative to the YAML's folder."""
    out = Path(out).absolute()
    roots = DataRoots.for_shards(shards, data_roots)
    task = partial(_st_shard, out=out, stages=stages or {}, default_stage=default_stage, roots=roots)
    results = _per_shard(task, shards, progress, cluster)
    skipped = sum((Counter(r["skipped"]) for r in results), Counter())
    folders: dict[tuple[int, str], str] = {}
    fragments: dict[tuple[int, str], list[str]] = defaultdict(list)
    counts: Counter = Counter()
    for r in results:  # in shard order: a source's first media mode sets its data_folder
        for stage, dataset, folder, fragment, n in r["files"]:
            if folders.setdefault((stage, dataset), folder) != folder:
                skipped["mixed_media_modes"] += n  # one entry has one data_folder
                continue
            fragments[(stage, dataset)].append(fragment)
            counts[(stage, dataset)] += n
    yamls = {}
    for stage in sorted({s for s, _ in fragments}):
        entries = []
        yaml_path = out / f"stage{stage}.yaml"
        for (s, dataset), parts in sorted(fragments.items()):
            if s != stage:
                continue
            json_path = confined_output(out, f"stage{stage}/{_file_name(dataset)}.json", "stage file")
            json_path.parent.mkdir(parents=True, exist_ok=True)
            _join_lists(parts, json_path)
            entries.append({"json_path": _shown(json_path, yaml_path, relative), "sampling_strategy": "all",
                            "source": dataset, "data_folder": _shown(Path(folders[(s, dataset)]), yaml_path,
                                                                     relative)})  # fmt: skip
        write_atomic(yaml_path, yaml.safe_dump({"datasets": entries}, sort_keys=False).encode())
        yamls[stage] = yaml_path
    shutil.rmtree(out / PARTS, ignore_errors=True)
    return {"records": sum(counts.values()), "stage_yamls": {k: str(v) for k, v in yamls.items()},
            "skipped": dict(skipped)}  # fmt: skip


def _st_shard(shard: Path, *, out: Path, stages: dict[str, int], default_stage: int, roots: DataRoots) -> dict:
    """One shard's ST records, grouped by (stage, source, data folder) into fragments."""
    data = out / "data"
    groups: dict[tuple[int, str, str], list[dict]] = defaultdict(list)
    skipped = Counter()
    for _, sample, error in iter_samples([shard]):
        if sample is None or error or sample.family != "st":
            skipped["unreadable" if sample is None or error else f"family {sample.family}"] += 1
            continue
        record = to_record(sample)
        dataset = sample.provenance.dataset if sample.provenance else "st"
        folder = data
        try:
            kind = sample.media[0].kind if sample.media else ""
            if "video" in record and kind == "video":  # a reference: the source video, as released
                ref = sample.media[0].ref
                folder = roots.roots.get(ref["root"])
                if folder is None:
                    msg = f"no data root {ref['root']!r} (give --data-root NAME=DIR)"
                    raise SourceError(msg, reason="missing_media")
                record["video"] = ref["path"]
            elif "video" in record:
                rel = f"videos/{sample.key}.mp4"
                target = confined_output(data, rel, "video")
                if kind == "clip":
                    _write_once(target, sample.media[0].data, out)
                else:
                    _frames_to_mp4([m.data for m in sample.media], target, out)
                meta = dict(record.get("meta") or {})
                if "split" in meta:
                    meta["source_split"] = meta["split"]
                meta["split"] = [0, sum(len(m.source_frames()) for m in sample.media) - 1]
                record["video"], record["meta"] = rel, meta
            elif "image" in record:
                paths = record["image"] if isinstance(record["image"], list) else [record["image"]]
                targets = [confined_output(data, rel, "image path") for rel in paths]
                for target, blob in zip(targets, _slot_images(sample)):
                    _write_once(target, blob, out)
        except SourceError as err:
            log.warning("%s: skipped: %s", sample.key, err)
            skipped[err.reason if err.reason != "invalid_annotation" else "unsafe_path"] += 1
            continue
        groups[(stages.get(dataset, default_stage), dataset, str(folder))].append(record)
    files = [[stage, dataset, folder, _fragment(out, shard, f"{stage}.{_file_name(dataset)}.{i}", records),
              len(records)] for i, ((stage, dataset, folder), records) in enumerate(groups.items())]  # fmt: skip
    return {"files": files, "skipped": dict(skipped)}


def _shown(path: Path, yaml_path: Path, relative: bool) -> str:
    return os.path.relpath(path, yaml_path.parent) if relative else str(path)


def _file_name(name: str) -> str:
    """A dataset name as a file name (names come from the shards: untrusted)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "dataset"


# The parquet files' features, as Hugging Face ``datasets`` reads them from the schema metadata:
# the record as Json (datasets >= 4.7), the media as a list of Image.
_PARQUET_FEATURES = {
    "key": {"dtype": "string", "_type": "Value"},
    "family": {"dtype": "string", "_type": "Value"},
    "dataset": {"dtype": "string", "_type": "Value"},
    "record": {"_type": "Json"},
    "images": {"feature": {"_type": "Image"}, "_type": "List"},
}


def export_parquet(shards: str | Path, out: str | Path, *, progress: bool = False, cluster: dict | None = None) -> dict:
    """One parquet file per shard (one Ray task each): ``key``, ``family``, ``dataset``,
    ``record`` (the shard's JSON, provenance included, as a JSON column) and ``images`` (every
    media item in order, as images with bytes and their member name).
    ``datasets.load_dataset("parquet", ...)`` shows the record as a dict and the images as PIL
    images."""
    out = Path(out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    results = _per_shard(partial(_parquet_shard, out=out), shards, progress, cluster)
    return {"rows": sum(r["rows"] for r in results), "files": [r["file"] for r in results]}


def _parquet_shard(shard: Path, *, out: Path) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema(
        [("key", pa.string()), ("family", pa.string()), ("dataset", pa.string()), ("record", pa.json_()),
         ("images", pa.list_(image))],
        metadata={"huggingface": json.dumps({"info": {"features": _PARQUET_FEATURES}})},
    )  # fmt: skip
    rows = {name: [] for name in schema.names}
    for _, sample, error in iter_samples([shard]):
        if sample is None or error:
            continue
        rows["key"].append(sample.key)
        rows["family"].append(sample.family)
        rows["dataset"].append(sample.provenance.dataset if sample.provenance else "")
        rows["record"].append(json.dumps(to_shard_json(sample), ensure_ascii=False))
        rows["images"].append([{"bytes": m.data, "path": f"{sample.key}.{i}.{m.ext}"}
                               for i, m in enumerate(sample.media)])  # fmt: skip
    path = confined_output(out, shard.stem + ".parquet", "parquet file")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        pq.write_table(pa.table(rows, schema=schema), tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return {"rows": len(rows["key"]), "file": str(path)}


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


def _write_once(path: Path, data: bytes, out: Path) -> None:
    """Write a media file (``path`` already confined to ``out``); samples that share a path share
    the same bytes, so skip repeats. Folders are made one by one and never through a symlink."""
    if path.exists():
        return
    _make_parents(path, out)
    write_atomic(path, data)


def _make_parents(path: Path, out: Path) -> None:
    current = out.resolve()
    current.mkdir(parents=True, exist_ok=True)
    for part in path.parent.relative_to(current).parts:
        current = current / part
        if current.is_symlink():
            raise SourceError(f"{current} is a symlink: refusing to write through it", reason="unsafe_path")
        current.mkdir(exist_ok=True)


def _frames_to_mp4(frames: list[bytes], path: Path, out: Path) -> None:
    _make_parents(path, out)
    partial = path.with_name(f".{path.stem}.{os.getpid()}.partial.mp4")
    with tempfile.TemporaryDirectory() as tmp:
        for i, data in enumerate(frames):
            (Path(tmp) / f"{i:05d}.jpg").write_bytes(data)
        cmd = [ffmpeg_binary(), "-loglevel", "error", "-y", "-framerate", "10", "-i", str(Path(tmp) / "%05d.jpg"),
               "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2", "-c:v", "libx264", "-crf", "16", "-pix_fmt", "yuv420p",
               "-bitexact", "-map_metadata", "-1", str(partial)]  # fmt: skip
        try:
            subprocess.run(cmd, check=True)
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
