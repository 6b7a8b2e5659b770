"""MUSE (PixelLM's multi-target reasoning segmentation) as ST-Align image grounded conversation.

Layout (github.com/MaverickRen/PixelLM: README, ``utils/multi_reason_seg_dataset.py``)::

    muse_train.json          [{file_name | coco_url, height, width, ann_list: [...],
                               questions: [q, ...], answers: [[ann, ...], ...],
                               text_answers: ["... {seg} ...", ...]}, ...]
    coco/train2014/<file_name>            items with ``file_name``
    coco/train2017/<name>, coco/val2017/<name>   items with ``coco_url`` (the folder is in the URL)

An ann is ``{category_id, category_name, rephrased_name?, segmentation (polygons or RLE), bbox?}``.
Verified: the fields above, that each ``text_answers[i]`` holds one ``{seg}`` per ann of
``answers[i]`` (PixelLM skips the item otherwise), that an item may have no ``text_answers``
(PixelLM then names the objects), and the image folders. Not verified: the convention of an ann's
``bbox`` (LVIS / COCO ``[x, y, w, h]`` is assumed). ``box_source``: ``auto`` takes ``bbox`` when
present, else the box of the segmentation (:mod:`.masks`); ``mask`` always derives it from the
segmentation; ``bbox`` requires the field.

One sample per item: a multi-turn conversation, question i as a human turn (the first with the
``<image>``), text answer i as the gpt turn with each ``{seg}`` replaced by its ann's box
(``@st_image/seg_box``). Items without questions are ``filtered``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ...coords import Box, Ops
from ...errors import BuildError, SourceError
from ...sample import Sample
from ...synthetic import synthetic_image
from .. import fields as F
from ..base import RawRecord
from .common import ImageParams, STImageAdapter, escape, join_path, pixel_box
from .masks import encode_rle_string, mask_runs, segmentation_box

BOX_SOURCES = ("auto", "bbox", "mask")
SEG = "{seg}"


@dataclass
class MuseParams(ImageParams):
    annotation_file: str = "muse_train.json"
    image_dir: str = "coco"  # holds train2014/, train2017/, val2017/
    image_prefix: str = "coco"  # the record's image path: <prefix>/<COCO folder>/<file>
    box_source: str = "auto"  # auto | bbox | mask
    max_turns: int = 0  # 0: every question of an item
    first_question: str = "@st_image/gc_first_question"
    question: str = "@st_image/gc_question"
    seg_box: str = "@st_image/seg_box"
    object_answer: str = "@st_image/gc_object"  # items without text_answers: "{name} {box}" per object


def image_path(item: dict, where: str) -> str:
    """``<COCO folder>/<file>`` of a MUSE item: train2014 for ``file_name``, else from ``coco_url``."""
    if item.get("file_name"):
        return f"train2014/{F.text(item, 'file_name', where)}"
    url = F.text(item, "coco_url", where)
    parts = PurePosixPath(url.split("://", 1)[-1]).parts
    if len(parts) < 2:
        raise SourceError(f"{where}: coco_url {url!r} names no COCO folder")
    return f"{parts[-2]}/{parts[-1]}"


class Muse(STImageAdapter):
    name = "muse"
    Params = MuseParams
    description = "MUSE (PixelLM) questions and {seg} answers as ST-Align image grounded conversation"
    reader = "json"  # annotation_files() is a JSON list, read item by item

    def preflight(self) -> None:
        if self.params.box_source not in BOX_SOURCES:
            raise BuildError(f"{self.name}: box_source {self.params.box_source!r} is not one of {BOX_SOURCES}")

    def annotation_files(self) -> list[str]:
        return [self.params.annotation_file]

    def source_id(self, item) -> str:
        data = item.data if isinstance(item.data, dict) else {}
        name = data.get("file_name") or str(data.get("coco_url") or "").rsplit("/", 1)[-1]
        return f"{PurePosixPath(name).stem}-{item.locator.split()[-1]}" if name else super().source_id(item)

    def _box(self, ann: dict, *, width: float, height: float, where: str, ops: Ops) -> Box:
        mode = self.params.box_source
        if mode != "mask" and ann.get("bbox") is not None:
            return pixel_box(ann["bbox"], width=width, height=height, fmt="xywh", what=f"{where} bbox", ops=ops)
        if mode == "bbox":
            raise SourceError(f"{where}: no 'bbox' (box_source: bbox)")
        seg = F.need(ann, "segmentation", where)
        xyxy = segmentation_box(seg, height=round(height), width=round(width))
        ops.add("box_from_mask")
        return pixel_box(xyxy, width=width, height=height, fmt="xyxy", what=f"{where} mask box", ops=ops)

    def to_sample(self, record: RawRecord) -> Sample:
        p, item, where = self.params, record.data, record.locator
        if not isinstance(item, dict):
            raise SourceError(f"{where}: expected an object, got {type(item).__name__}")
        questions = item.get("questions")
        if not questions:
            raise SourceError(f"{where}: no questions (an instance-segmentation item)", reason="filtered")
        questions = F.texts(item, "questions", where)
        answers = F.listing(item, "answers", where)
        texts = item.get("text_answers") or [None] * len(answers)
        if not len(questions) == len(answers) == len(texts):
            raise SourceError(f"{where}: {len(questions)} questions, {len(answers)} answers, {len(texts)} text answers")
        width, height = F.number(item, "width", where, lo=1), F.number(item, "height", where, lo=1)
        rel = image_path(item, where)
        media = self.load_image(join_path(p.image_dir, rel), size=(width, height), where=where)
        ops, notes, turns = Ops(), {}, []
        limit = p.max_turns or len(questions)
        for i, (question, anns, text) in enumerate(list(zip(questions, answers, texts))[:limit]):
            at = f"{where} answers[{i}]"
            if not isinstance(anns, list) or not anns:
                raise SourceError(f"{at}: expected a non-empty list of objects")
            if not all(isinstance(a, dict) for a in anns):
                raise SourceError(f"{at}: every object must be a mapping")
            boxes = [self._box(a, width=width, height=height, where=f"{at}[{k}]", ops=ops) for k, a in enumerate(anns)]
            answer, values = self._answer(record, text, anns, boxes, at, notes)
            ask = self.template(notes, p.first_question if i == 0 else p.question, record, f"human{i}")
            turns += [("human", ask, {"question": question.strip()}), ("gpt", answer, values)]
        return self.image_sample(record, turns, image=join_path(p.image_prefix, rel), media=media, notes=notes,
                                 ops=ops)  # fmt: skip

    def _answer(self, record: RawRecord, text, anns: list, boxes: list[Box], at: str, notes: dict):
        """The gpt turn as a template (literal text escaped) and its box values."""
        p = self.params
        values = {f"_g{k}": box for k, box in enumerate(boxes)}
        if text is None:
            form = self.template(notes, p.object_answer, record, "object")
            parts = []
            for k, ann in enumerate(anns):
                name = ann.get("rephrased_name") or ann.get("category_name")
                if not isinstance(name, str) or not name.strip():
                    raise SourceError(f"{at}[{k}]: no category_name to name the object by")
                parts.append(form.replace("{name}", escape(name.strip())).replace("{box}", f"{{_g{k}}}"))
            return ", ".join(parts) + ".", values
        text = F.check_text(text, f"{at}: text answer")
        pieces = text.split(SEG)
        if len(pieces) - 1 != len(boxes):
            raise SourceError(f"{at}: the text answer has {len(pieces) - 1} {SEG} markers for {len(boxes)} objects")
        seg = self.template(notes, p.seg_box, record, "seg")
        out = [escape(pieces[0])]
        for k, piece in enumerate(pieces[1:]):
            out += [seg.replace("{box}", f"{{_g{k}}}"), escape(piece)]
        return "".join(out), values

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        _write_muse_miniature(Path(root), seed=seed)


def _write_muse_miniature(root: Path, *, seed: int = 0) -> None:
    """Items with ``file_name`` (train2014) and ``coco_url`` (train2017), boxes given and only as
    polygons / compressed RLE / uncompressed RLE, an item without text answers, an instance
    item without questions (filtered) and one whose answer lacks a ``{seg}`` marker."""
    mask = [[0] * 40 for _ in range(30)]
    for r in range(5, 15):
        for c in range(20, 32):
            mask[r][c] = 1  # pixels x 20..31, y 5..14: the box [20, 5, 32, 15]
    runs = mask_runs(mask)
    items = [
        {"file_name": "COCO_train2014_000000000077.jpg", "height": 30, "width": 40,
         "ann_list": [{"category_id": 1, "category_name": "person"}],
         "questions": ["Who is holding something that keeps the rain off?", "What is on the table?"],
         "answers": [[{"category_id": 1, "category_name": "person", "bbox": [2, 3, 10, 20],
                       "segmentation": [[2, 3, 12, 3, 12, 23, 2, 23]]},
                      {"category_id": 2, "category_name": "umbrella", "segmentation": [[14, 1, 30, 1, 22, 9]]}],
                     [{"category_id": 3, "category_name": "cup", "rephrased_name": "a white cup",
                       "segmentation": {"size": [30, 40], "counts": encode_rle_string(runs)}}]],
         "text_answers": ["The person {seg} holds the umbrella {seg} over their head.",
                          "A white cup {seg} sits on the table."]},
        {"coco_url": "http://images.cocodataset.org/train2017/000000000139.jpg", "height": 30, "width": 40,
         "ann_list": [], "questions": ["Which objects could hold water?"],
         "answers": [[{"category_id": 3, "category_name": "cup", "segmentation": {"size": [30, 40], "counts": runs}},
                      {"category_id": 4, "category_name": "vase", "bbox": [0, 0, 40, 30]}]]},
        {"coco_url": "http://images.cocodataset.org/val2017/000000000285.jpg", "height": 30, "width": 40,
         "ann_list": [{"category_id": 5, "category_name": "bear", "segmentation": [[1, 1, 5, 1, 5, 5]]}]},
        {"file_name": "COCO_train2014_000000000077.jpg", "height": 30, "width": 40, "ann_list": [],
         "questions": ["Where is the dog?"], "answers": [[{"category_id": 6, "category_name": "dog",
                                                         "bbox": [1, 1, 4, 4]}]],
         "text_answers": ["The dog is in the corner."]},
    ]  # fmt: skip
    (root).mkdir(parents=True, exist_ok=True)
    (root / "muse_train.json").write_text(json.dumps(items))
    for n, rel in enumerate(("train2014/COCO_train2014_000000000077.jpg", "train2017/000000000139.jpg",
                             "val2017/000000000285.jpg")):  # fmt: skip
        path = root / "coco" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        synthetic_image(seed + n, (40, 30)).save(path, "JPEG")
