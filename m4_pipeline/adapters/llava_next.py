"""LLaVA-NeXT single-image SFT data (HF ``lmms-lab/LLaVA-NeXT-Data``) as anyres multi-patch samples.

Two published forms [V HF card]::

    data/train-000NN-of-00250.parquet      id: string, conversations: list<{from, value}>,
                                           data_source: string, image: image {bytes, path}
    llava_next_raw_format/llava_next_raw_format_processed.json   [{id, image, conversations}]
    llava_next_raw_format/llava_next_raw_format_images_<N>.tar.gz   the images of the JSON

``form: parquet`` reads the embedded images (rows carry references, the bytes are read where
the media are built). ``form: raw`` reads the JSON with its images either extracted under
``raw_images`` or, with ``images_from: archives``, straight from the tar.gz files: the listing
streams their headers once, records are listed in archive order and each archive is read by a
forward cursor (``readers.TarStream``). Which folder the tars' members start with is not known
[U]: a member matches an ``image`` path exactly, or after one outer folder.

M4-Instruct samples 307K of these (the paper; the data card names the LLaVA-1.5 mix instead,
``llava_mix``: a recipe choice); the selection is not published, the recipe samples at random.
Each image becomes one slot of anyres patches (LLaVA-NeXT's pinpoints), a base image plus the
tiles of the best-fit grid, as :mod:`.llava_mix` does. Rows without an image are not listed
(their count is logged): M4-Instruct's single-image part is multi-patch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..errors import BuildError, MediaError
from ..media.images import NormalizedImage, encode_jpeg, normalize_image
from ..media.patches import DEFAULT_PINPOINTS, AnyresTiler
from ..readers import TarStream, get_reader, iter_tar_members, normalize_member
from ..sample import Media, Sample
from ..synthetic import synthetic_image
from . import fields as F
from .base import Adapter, RawRecord, SourceParams

log = logging.getLogger(__name__)
RAW_DIR = "llava_next_raw_format"


@dataclass
class Params(SourceParams):
    form: str = "parquet"  # parquet | raw
    parquet_files: str = "data/train-*.parquet"
    raw_annotation: str = f"{RAW_DIR}/llava_next_raw_format_processed.json"
    images_from: str = "folders"  # raw form: folders (extracted under raw_images) | archives (the tar.gz)
    raw_images: str = RAW_DIR
    raw_archives: str = f"{RAW_DIR}/llava_next_raw_format_images_*.tar.gz"
    pinpoints: list[list[int]] = field(default_factory=lambda: [list(p) for p in DEFAULT_PINPOINTS])
    patch_size: int = 384
    image_prefix: str = ""  # prefix of the record's image paths [U: never released]
    dataset_name: str = "LLaVA-NeXT-Data"
    task_instruction: str = ""

    def __post_init__(self):
        if self.form not in ("parquet", "raw") or self.images_from not in ("folders", "archives"):
            raise BuildError(f"llava_next: form {self.form!r} must be parquet or raw, images_from "
                             f"{self.images_from!r} folders or archives")  # fmt: skip


class LLaVANeXT(Adapter):
    name = "llava_next"
    family = "m4"
    Params = Params
    description = "LLaVA-NeXT-Data single-image SFT (parquet with embedded images, or raw JSON + image tars), anyres"

    # --- listing --------------------------------------------------------------------------------
    def list_records(self) -> Iterator[RawRecord]:
        p = self.params
        if p.form == "parquet":
            files = self.src.glob(p.parquet_files)
            if not files:
                raise BuildError(f"{self.source_name}: no file matches {p.parquet_files} under {self.root}")
            items = (i for f in files for i in get_reader("parquet").read_file(self.src, f))
        else:
            items = get_reader("json").read_file(self.src, p.raw_annotation)
        records, seen, text_only = [], {}, 0
        for item in items:
            if item.error is None and isinstance(item.data, dict) and item.data.get("image") is None:
                text_only += 1
                continue
            sid = item.data.get("id") if isinstance(item.data, dict) else None
            sid = str(sid) if isinstance(sid, (str, int)) and not isinstance(sid, bool) else ""
            sid = sid or f"{PurePosixPath(item.file).stem}-{item.locator.replace(' ', '')}"
            seen[sid] = seen.get(sid, 0) + 1
            if seen[sid] > 1:  # ids repeat in LLaVA data; keys must not
                sid = f"{sid}-dup{seen[sid] - 1}"
            records.append(RawRecord(item.file, item.locator, sid, item.data, item.error))
        if text_only:
            log.info("%s: %d rows without an image left out", self.source_name, text_only)
        if p.form == "raw" and p.images_from == "archives":
            records = self._by_archive(records)
        return iter(records)

    def _by_archive(self, records: list[RawRecord]) -> list[RawRecord]:
        archives = self.src.glob(self.params.raw_archives)
        if not archives:
            raise BuildError(f"{self.source_name}: no archive matches {self.params.raw_archives} under {self.root}")
        where: dict[str, tuple[int, str, str]] = {}  # image path -> (order, archive, member)
        for rel in archives:
            for name, _ in iter_tar_members(self.src, rel, read=lambda n: False):
                member = normalize_member(name)
                for key in (member, member.split("/", 1)[-1]):  # as named, or under one outer folder
                    where.setdefault(key, (len(where), rel, member))
        for rec in records:
            image = rec.data.get("image") if isinstance(rec.data, dict) else None
            if isinstance(image, str) and image in where:
                order, rel, member = where[image]
                rec.data = {**rec.data, "_archive": {"file": rel, "member": member, "order": order}}
        last = float("inf")
        return sorted(records, key=lambda r: (r.data or {}).get("_archive", {}).get("order", last))

    # --- building -------------------------------------------------------------------------------
    def _source_image(self, record: RawRecord) -> tuple[NormalizedImage, str]:
        p, where = self.params, record.locator
        image = F.need(record.data, "image", where)
        if p.form == "parquet":
            if not isinstance(image, dict):
                raise MediaError(f"{where}: field 'image' is not an image struct", reason="invalid_annotation")
            data = self.embedded_bytes(image, f"{where}: image")
            rel = image.get("path") if isinstance(image.get("path"), str) else ""
            if data is None:
                raise MediaError(f"{where}: the image struct holds no bytes", reason="missing_media")
            source = record.data.get("data_source")
            rel = rel or f"{record.source_id}.jpg"
            return normalize_image(data, f"{where}: image"), f"{source}/{rel}" if isinstance(source, str) else rel
        rel = F.check_text(image, f"{where}: field 'image'")
        if p.images_from == "archives":
            found = record.data.get("_archive")
            if not isinstance(found, dict):
                raise MediaError(f"{where}: {rel} is in no archive matching {p.raw_archives}", reason="missing_media")
            stream = self._streams.setdefault(found["file"], TarStream(self.src, found["file"]))
            return normalize_image(stream.fetch([found["member"]])[found["member"]], rel), rel
        path = f"{p.raw_images}/{rel}" if p.raw_images not in ("", ".") else rel
        return normalize_image(self.src.read_bytes(path, "image"), rel), rel

    @property
    def _streams(self) -> dict[str, TarStream]:
        if not hasattr(self, "_stream_map"):
            self._stream_map: dict[str, TarStream] = {}
        return self._stream_map

    def to_sample(self, record: RawRecord) -> Sample:
        p, where = self.params, record.locator
        turns = [(F.text(t, "from", f"{where} turn {i}"), F.text(t, "value", f"{where} turn {i}"))
                 for i, t in enumerate(F.listing(record.data, "conversations", where))]  # fmt: skip
        source, rel = self._source_image(record)
        tiler = AnyresTiler(pinpoints=p.pinpoints, patch_size=p.patch_size)
        rows, cols = tiler.grid_for(source.size)
        ops = [*source.ops, f"anyres:{rows}x{cols}"]
        media = [Media("patch", 0, encode_jpeg(patch.image), "jpg", grid=patch.grid, size=list(patch.image.size),
                       ops=ops) for patch in tiler.tile(source.image)]  # fmt: skip
        path = f"{p.image_prefix}/{rel}" if p.image_prefix else rel
        out = self.m4_sample(record, turns, images=[path], media=media, task_instruction=p.task_instruction)
        out.record["sample_id"] = record.data.get("id", record.source_id)
        return out

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        _write_miniature(Path(root), seed=seed)


# --- the miniature ---------------------------------------------------------------------------------

ROWS = [  # (id, data_source, image path or None, size)
    ("000000033471", "llava_v1_5_coco", "coco/train2017/000000033471.jpg", (640, 480)),
    ("sa_1002", "sharegpt4v_sam", "sam/images/sa_1002.jpg", (500, 750)),
    ("text_only_17", "sharegpt", None, None),
    ("chartqa_88", "chartqa", "chartqa/train/png/88.png", (800, 300)),
    ("000000033471", "llava_v1_5_coco", "coco/train2017/000000052846.jpg", (480, 640)),  # an id that repeats
    ("ai2d_5", "ai2d", "ai2d/images/5.png", (300, 300)),
]


def _write_miniature(root: Path, *, seed: int = 0) -> None:
    """Both forms of the same rows: two parquet files (real column types, embedded image bytes,
    one text-only row, an id that repeats) and the raw JSON with its images extracted and as two
    tar.gz archives (members under an outer folder in one of them)."""
    import io
    import tarfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    conv = pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))
    image_t = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema([("id", pa.string()), ("conversations", conv), ("data_source", pa.string()), ("image", image_t)])
    rows, raw, blobs = [], [], {}
    for i, (sid, source, rel, size) in enumerate(ROWS):
        turns = [{"from": "human", "value": ("<image>\n" if rel else "") + "What is shown here?"},
                 {"from": "gpt", "value": f"A picture of {2 + i} coloured shapes."},
                 {"from": "human", "value": "Which colour dominates?"},
                 {"from": "gpt", "value": "A warm colour."}]  # fmt: skip
        image = None
        if rel:
            buf = io.BytesIO()
            synthetic_image(seed + 8100 + i, size).save(buf, "PNG" if rel.endswith(".png") else "JPEG")
            blobs[rel] = buf.getvalue()
            image = {"bytes": blobs[rel], "path": PurePosixPath(rel).name}
        rows.append({"id": sid, "conversations": turns, "data_source": source, "image": image})
        raw.append({"id": sid, **({"image": rel} if rel else {}), "conversations": turns})
    (root / "data").mkdir(parents=True, exist_ok=True)
    for k, part in enumerate((rows[:3], rows[3:])):
        pq.write_table(pa.Table.from_pylist(part, schema=schema), root / "data" / f"train-{k:05d}-of-00002.parquet",
                       row_group_size=2)  # fmt: skip
    raw_dir = root / RAW_DIR
    raw_dir.mkdir(parents=True, exist_ok=True)
    (raw_dir / "llava_next_raw_format_processed.json").write_text(json.dumps(raw, indent=1))
    names = sorted(blobs)
    for k, part in enumerate((names[:2], names[2:])):
        with tarfile.open(raw_dir / f"llava_next_raw_format_images_{k}.tar.gz", "w:gz") as tf:
            for rel in part:
                (raw_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                (raw_dir / rel).write_bytes(blobs[rel])
                info = tarfile.TarInfo(("images/" if k == 1 else "./") + rel)
                info.size, info.mtime = len(blobs[rel]), 0
                tf.addfile(info, io.BytesIO(blobs[rel]))
