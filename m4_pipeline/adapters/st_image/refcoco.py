"""RefCOCO, RefCOCO+ and RefCOCOg as ST-Align REC and REG samples, from each published form.

One sample per referring expression (sentence) of the **train** split: REC asks where the
expression is and answers with its box; REG gives the box and answers with the expression. Rows
of the val / test / testA / testB splits are never training samples (they are what
decontamination indexes, :mod:`m4_pipeline.dedup.evalsets.refcoco`): they are not listed, and
their number is logged.

The three forms (verified layouts, see docs/st_image_sources.md):

- ``refcoco_refer``: refer's ``<dataset>/refs(<splitBy>).p`` (a Python 2 pickle of plain data,
  read only by :mod:`m4_pipeline.readers.safe_pickle`, which refuses any class or global) and
  ``<dataset>/instances.json`` (COCO: ``images``, ``annotations``). splitBy: unc (RefCOCO,
  RefCOCO+), umd (RefCOCOg).
- ``refcoco_mdetr``: MDETR's ``mdetr_annotations/finetune_<dataset>_train.json``, COCO form with
  one ``images`` entry per sentence (``caption``, ``original_id`` = COCO image id) and one
  annotation per entry, joined by ``image_id`` (not by position).
- ``refcoco_parquet``: jxu124's ``<repo>/data/train-*.parquet`` (repos refcoco, refcocoplus,
  refcocog), one row per ref with ``sentences``, ``raw_anns`` and ``raw_image_info`` (JSON text).
  Its ``bbox`` column is not used: its convention is not documented; ``raw_anns.bbox`` is COCO's.

Boxes are COCO pixel ``[x, y, w, h]`` -> ``[x, y, x+w, y+h] / (W, H, W, H)``, 3 decimals, written
WIDTH HEIGHT WIDTH HEIGHT; W and H come from the annotation and the image must have that size.
The expression is refer's ``sent`` (lower-cased, tokenized; MDETR's ``caption`` is the same text)
unless ``text_field: raw``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ...coords import Ops
from ...errors import BuildError, SourceError
from ...readers import get_reader, load_data, load_json
from ...sample import Sample
from .. import fields as F
from ..base import RawRecord
from . import refer_mini
from .common import ImageParams, STImageAdapter, check_task, join_path, pixel_box

log = logging.getLogger(__name__)

DATASETS = ("refcoco", "refcoco+", "refcocog")
TASKS = ("rec", "reg")
TRAIN = "train"
EVAL_SPLITS = ("val", "test", "testA", "testB", "validation")
SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}
PARQUET_REPO = {"refcoco": "refcoco", "refcoco+": "refcocoplus", "refcocog": "refcocog"}


@dataclass
class RefParams(ImageParams):
    dataset: str = "refcoco"  # refcoco | refcoco+ | refcocog
    task: str = "rec"  # rec | reg
    text_field: str = "sent"  # sent (refer's normalised text, MDETR's caption) | raw
    image_dir: str = "train2014"  # COCO train2014 images, relative to the source root
    image_prefix: str = "coco/train2014"  # the record's image path: <prefix>/COCO_train2014_<id>.jpg
    rec_prompt: str = "@st_image/rec_prompt"
    rec_answer: str = "@st_image/rec_answer"
    reg_prompt: str = "@st_image/reg_prompt"
    reg_answer: str = "@st_image/reg_answer"


def image_file_name(refer_name: str) -> str:
    """refer's ``COCO_train2014_<id>_<ann id>.jpg`` without the annotation id (MDETR's rule)."""
    stem = PurePosixPath(refer_name).stem
    return f"{stem.rsplit('_', 1)[0]}.jpg" if stem.count("_") >= 3 else refer_name


class _RefCOCO(STImageAdapter):
    """REC / REG from a normalised record: ``{sentence, bbox (xywh px), width, height, file_name}``."""

    Params = RefParams

    def preflight(self) -> None:
        check_task(self.params.task, TASKS, self.name)
        if self.params.dataset not in DATASETS:
            raise BuildError(f"{self.name}: dataset {self.params.dataset!r} is not one of {', '.join(DATASETS)}")
        if self.params.text_field not in ("sent", "raw"):
            raise BuildError(f"{self.name}: text_field {self.params.text_field!r} is not 'sent' or 'raw'")

    def _log_held_out(self, held_out: dict[str, int], rel: str) -> None:
        if held_out:
            log.info("%s %s: %s rows of evaluation splits not listed (they feed decontamination)",
                     self.source_name, rel, dict(sorted(held_out.items())))  # fmt: skip

    def to_sample(self, record: RawRecord) -> Sample:
        p, d, where = self.params, record.data, record.locator
        split = d.get("split")
        if split != TRAIN:  # evaluation splits are not even listed; this is an unknown or missing one
            reason = "filtered" if isinstance(split, str) and split else "invalid_annotation"
            raise SourceError(f"{where}: split {split!r} is not the train split", reason=reason)
        expression = F.check_text(d.get("sentence"), f"{where}: sentence").strip()
        width, height = F.number(d, "width", where, lo=1), F.number(d, "height", where, lo=1)
        file_name = F.text(d, "file_name", where)
        if d.get("bbox") is None:
            raise SourceError(f"{where}: the expression has no annotated box")
        ops = Ops()
        box = pixel_box(d["bbox"], width=width, height=height, fmt="xywh", what=f"{where}: bbox", ops=ops)
        media = self.load_image(join_path(p.image_dir, file_name), size=(width, height), where=where)
        notes: dict[str, str] = {}
        prompt, answer = (p.rec_prompt, p.rec_answer) if p.task == "rec" else (p.reg_prompt, p.reg_answer)
        values = {"expression": expression, "box": box}
        human = self.template(notes, prompt, record, "human")
        gpt = self.template(notes, answer, record, "gpt")
        turns = [("human", human, values), ("gpt", gpt, values)]
        image = join_path(p.image_prefix, file_name)
        return self.image_sample(record, turns, image=image, media=media, notes=notes, ops=ops)


# --- refer: refs(<splitBy>).p + instances.json ----------------------------------------------------


@dataclass
class ReferParams(RefParams):
    refer_dir: str = "{dataset}"  # the folder of refs(<splitBy>).p and instances.json
    split_by: str = ""  # "" = refer's recommended split: unc (RefCOCO, RefCOCO+), umd (RefCOCOg)


class RefCOCORefer(_RefCOCO):
    name = "refcoco_refer"
    Params = ReferParams
    description = "RefCOCO/+/g from refer's refs(<splitBy>).p (safe pickle) + instances.json as ST REC/REG"

    def _paths(self) -> tuple[str, str]:
        p = self.params
        folder = p.refer_dir.format(dataset=p.dataset)
        return f"{folder}/refs({p.split_by or SPLIT_BY.get(p.dataset, 'unc')}).p", f"{folder}/instances.json"

    def list_records(self):
        refs_rel, instances_rel = self._paths()
        refs = load_data(self.src, refs_rel)  # plain data only: a pickle naming a class is refused
        if not isinstance(refs, list):
            raise BuildError(f"{refs_rel}: expected a list of refs, got {type(refs).__name__}")
        coco = load_json(self.src, instances_rel)
        if not isinstance(coco, dict):
            raise BuildError(f"{instances_rel}: expected a COCO object with 'images' and 'annotations'")
        images = {i.get("id"): i for i in coco.get("images") or [] if isinstance(i, dict)}
        anns = {a.get("id"): a for a in coco.get("annotations") or [] if isinstance(a, dict)}
        held_out: dict[str, int] = {}
        for i, ref in enumerate(refs):
            where = f"index {i}"
            if not isinstance(ref, dict):
                yield RawRecord(refs_rel, where, f"{self.params.dataset}-r{i}", None, f"{refs_rel} {where}: not a ref")
                continue
            split = ref.get("split")
            if split in EVAL_SPLITS:
                held_out[split] = held_out.get(split, 0) + len(ref.get("sentences") or [])
                continue
            image = images.get(ref.get("image_id")) or {}
            ann = anns.get(ref.get("ann_id")) or {}
            sentences = ref.get("sentences") if isinstance(ref.get("sentences"), list) else [None]
            for j, sentence in enumerate(sentences):
                loc = f"{where} sentences[{j}]"
                sent_id = sentence.get("sent_id") if isinstance(sentence, dict) else None
                data = {
                    "split": split, "ref_id": ref.get("ref_id"), "ann_id": ref.get("ann_id"),
                    "image_id": ref.get("image_id"), "sent_id": sent_id,
                    "sentence": sentence.get(self.params.text_field) if isinstance(sentence, dict) else None,
                    "bbox": ann.get("bbox"), "width": image.get("width"), "height": image.get("height"),
                    "file_name": image.get("file_name") or image_file_name(str(ref.get("file_name", ""))),
                }  # fmt: skip
                sid = f"{self.params.dataset}-s{sent_id}" if sent_id is not None else f"{self.params.dataset}-{i}-{j}"
                yield RawRecord(refs_rel, loc, sid, data)
        self._log_held_out(held_out, refs_rel)

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        refer_mini.write_refer(root)
        refer_mini.write_images(root, seed=seed)


# --- MDETR: finetune_<dataset>_train.json ---------------------------------------------------------


@dataclass
class MdetrParams(RefParams):
    annotation_file: str = "mdetr_annotations/finetune_{dataset}_train.json"


class RefCOCOMdetr(_RefCOCO):
    name = "refcoco_mdetr"
    Params = MdetrParams
    description = "RefCOCO/+/g from MDETR's COCO-format finetune_<dataset>_train.json as ST REC/REG"

    def preflight(self) -> None:
        super().preflight()
        stem = PurePosixPath(self.params.annotation_file.format(dataset=self.params.dataset)).stem
        if any(stem.endswith(f"_{s}") for s in EVAL_SPLITS):
            raise BuildError(f"{self.name}: {stem} is an evaluation split; training rows come from train files only")

    def list_records(self):
        rel = self.params.annotation_file.format(dataset=self.params.dataset)
        coco = load_json(self.src, rel)
        if not isinstance(coco, dict) or not isinstance(coco.get("images"), list):
            raise BuildError(f"{rel}: expected a COCO-format object with an 'images' list")
        anns: dict[Any, dict] = {}
        for a in coco.get("annotations") or []:
            if isinstance(a, dict):
                anns.setdefault(a.get("image_id"), a)
        for i, image in enumerate(coco["images"]):
            where = f"images[{i}]"
            if not isinstance(image, dict):
                yield RawRecord(rel, where, f"{self.params.dataset}-i{i}", None, f"{rel} {where}: not an object")
                continue
            ann = anns.get(image.get("id")) or {}
            data = {"split": TRAIN, "image_id": image.get("original_id"), "ann_id": ann.get("original_id"),
                    "sentence": image.get("caption"), "bbox": ann.get("bbox"), "width": image.get("width"),
                    "height": image.get("height"), "file_name": image.get("file_name")}  # fmt: skip
            ident = image.get("id")
            sid = f"{self.params.dataset}-{ident}" if isinstance(ident, (int, str)) else f"{self.params.dataset}-i{i}"
            yield RawRecord(rel, where, sid, data)

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        refer_mini.write_mdetr(root)
        refer_mini.write_images(root, seed=seed)


# --- jxu124 parquet -------------------------------------------------------------------------------


@dataclass
class ParquetParams(RefParams):
    files: str = "{repo}/data/train-*.parquet"  # {repo}: refcoco | refcocoplus | refcocog


def _json_field(row: dict, names: tuple[str, ...], where: str) -> Any:
    """The first present field of ``names``, parsed when it is JSON text (jxu124 stores raw_anns so)."""
    for name in names:
        value = row.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError:
                raise SourceError(f"{where}: field {name!r} is not valid JSON") from None
        return value
    return None


class RefCOCOParquet(_RefCOCO):
    name = "refcoco_parquet"
    Params = ParquetParams
    description = "RefCOCO/+/g from jxu124's parquet copies (train split) as ST REC/REG"

    def list_records(self):
        p = self.params
        pattern = p.files.format(repo=PARQUET_REPO.get(p.dataset, p.dataset), dataset=p.dataset)
        files = self.src.glob(pattern)
        if not files:
            raise BuildError(f"{self.name}: no parquet file matches {pattern} under {self.src.root}")
        reader = get_reader("parquet")
        for rel in files:
            held_out: dict[str, int] = {}
            for item in reader.read_file(self.src, rel):
                yield from self._row_records(rel, item.locator, item.data, held_out)
            self._log_held_out(held_out, rel)

    def _row_records(self, rel: str, where: str, row: Any, held_out: dict[str, int]):
        p = self.params
        if not isinstance(row, dict):
            yield RawRecord(rel, where, f"{p.dataset}-{where}", None, f"{rel} {where}: not a row")
            return
        split = row.get("split")
        try:
            sentences = _json_field(row, ("sentences",), where)
            ann = _json_field(row, ("raw_anns", "anns"), where) or {}
            image = _json_field(row, ("raw_image_info", "image_info"), where) or {}
        except SourceError as err:
            yield RawRecord(rel, where, f"{p.dataset}-{where.replace(' ', '')}", None, str(err))
            return
        if split in EVAL_SPLITS:
            held_out[split] = held_out.get(split, 0) + len(sentences or [])
            return
        for j, sentence in enumerate(sentences if isinstance(sentences, list) else [None]):
            sent_id = sentence.get("sent_id") if isinstance(sentence, dict) else None
            data = {
                "split": split, "ref_id": row.get("ref_id"), "ann_id": row.get("ann_id"),
                "image_id": row.get("image_id"), "sent_id": sent_id,
                "sentence": sentence.get(p.text_field) if isinstance(sentence, dict) else None,
                "bbox": ann.get("bbox") if isinstance(ann, dict) else None,
                "width": image.get("width") if isinstance(image, dict) else None,
                "height": image.get("height") if isinstance(image, dict) else None,
                "file_name": (image.get("file_name") if isinstance(image, dict) else None)
                or image_file_name(str(row.get("file_name", ""))),
            }  # fmt: skip
            sid = f"{p.dataset}-s{sent_id}" if sent_id is not None else f"{p.dataset}-{where.replace(' ', '')}-{j}"
            yield RawRecord(rel, f"{where} sentences[{j}]", sid, data)

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        refer_mini.write_parquet(root)
        refer_mini.write_images(root, seed=seed)
