"""Flickr30k Entities as ST-Align dense grounded captioning (DGC) and grounded captions (GCG).

One sample per sentence of the train split: the prompt asks for a description with boxes
(``@st_image/dgc_prompt`` or ``@st_image/gcg_prompt``), the answer is the sentence with each
grounded phrase followed by its box (``@st_image/grounded_phrase``: ``"{phrase} {box}"``).
Phrases without a box (chain 0 / ``notvisual``, ``nobndbox``, ``scene``) stay plain text; a
sentence with no grounded phrase is ``filtered``. With ``merge_boxes`` (default, the Flickr30k
"merged ground truth" protocol MDETR's mergedGT and GLaMM's GCG files follow) a phrase whose
entity has several boxes gets their union; otherwise each box, joined by ``box_separator``.

Two published forms:

- ``flickr30k_entities`` (github.com/BryanPlummer/flickr30k_entities)::

      train.txt val.txt test.txt               image ids, one per line
      Annotations/<id>.xml                     VOC-like: size, object/name (= chain id, may repeat),
                                               bndbox xmin..ymax in 1-BASED pixels, or nobndbox/scene flags
      Sentences/<id>.txt                       5 lines: "[/EN#18/people A child] in [/EN#19/clothing ...]"
      flickr30k-images/<id>.jpg

  Boxes: 1-based inclusive pixels; the dataset's own utility subtracts 1 from all four values, and
  :func:`m4_pipeline.coords.norm_box` with ``origin=1`` does the same.
- ``flickr30k_mdetr``: MDETR's ``final_flickr_{mergedGT,separateGT}_train.json`` (COCO form, one
  ``images`` entry per sentence: ``caption``, ``original_img_id``, ``sentence_id``, ``width`` /
  ``height`` as strings; annotations ``bbox [xmin, ymin, w, h]`` with ``tokens_positive`` spans).
  MDETR copies ``xmin`` / ``ymin`` from the XML without subtracting 1 (``w = xmax - xmin``), so
  these boxes are 1-based too (``origin=1``): both forms give the same normalised box.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ...coords import Box, Ops
from ...errors import BuildError, SourceError
from ...readers import as_list, get_reader, load_json
from ...sample import Sample
from .. import fields as F
from ..base import RawRecord
from . import flickr_mini
from .common import Grounding, ImageParams, STImageAdapter, check_task, interleave, join_path, pixel_box, union_box

TASKS = ("dgc", "gcg")
PHRASE = re.compile(r"\[/EN#(\d+)((?:/[^\s\]/]+)*)\s+([^\]]*)\]")


@dataclass
class FlickrParams(ImageParams):
    task: str = "dgc"  # dgc (dense grounded captioning) | gcg (grounded caption, image grounded conversation)
    image_dir: str = "flickr30k-images"
    image_prefix: str = "flickr30k/flickr30k-images"  # the record's image path: <prefix>/<id>.jpg
    merge_boxes: bool = True  # one union box per phrase (merged ground truth)
    box_separator: str = ", "  # between the boxes of one phrase when merge_boxes is off
    sentences_per_image: int = 0  # 0: every sentence of an image; N: its first N
    dgc_prompt: str = "@st_image/dgc_prompt"
    gcg_prompt: str = "@st_image/gcg_prompt"
    grounded_phrase: str = "@st_image/grounded_phrase"


def parse_sentence(markup: str) -> tuple[str, list[tuple[int, int, str, list[str]]]]:
    """A Sentences line as (plain text, [(start, end, chain id, types)]): the bracket markup is
    removed and each phrase's character span in the plain text kept."""
    text, phrases, pos = [], [], 0
    out_len = 0
    for m in PHRASE.finditer(markup):
        before = markup[pos : m.start()]
        text.append(before)
        out_len += len(before)
        words = m.group(3).strip()
        phrases.append((out_len, out_len + len(words), m.group(1), [t for t in m.group(2).split("/") if t]))
        text.append(words)
        out_len += len(words)
        pos = m.end()
    text.append(markup[pos:])
    plain = "".join(text)
    if "[/EN#" in plain:
        raise SourceError(f"unbalanced phrase markup in {markup!r}")
    return plain, phrases


class _Flickr(STImageAdapter):
    Params = FlickrParams

    def preflight(self) -> None:
        check_task(self.params.task, TASKS, self.name)
        if self.params.sentences_per_image < 0:
            raise BuildError(f"{self.name}: sentences_per_image must be >= 0")

    def _grounded_sample(self, record: RawRecord, text: str, phrases: list[tuple[int, int, list[Box]]],
                         *, file_name: str, size, ops: Ops) -> Sample:  # fmt: skip
        p = self.params
        groundings = []
        for start, end, boxes in phrases:
            if boxes:
                merged = (union_box(boxes),) if p.merge_boxes and len(boxes) > 1 else tuple(boxes)
                if len(merged) < len(boxes):
                    ops.add("boxes_merged")
                groundings.append(Grounding(start, end, merged))
        if not groundings:
            raise SourceError(f"{record.locator}: no phrase of the sentence has a box", reason="filtered")
        answer, values = interleave(text, groundings, phrase_template=p.grounded_phrase,
                                    separator=p.box_separator, ops=ops)  # fmt: skip
        media = self.load_image(join_path(p.image_dir, file_name), size=size, where=record.locator)
        notes: dict[str, str] = {}
        prompt = self.template(notes, p.dgc_prompt if p.task == "dgc" else p.gcg_prompt, record, "human")
        turns = [("human", prompt, {}), ("gpt", answer, values)]
        image = join_path(p.image_prefix, file_name)
        return self.image_sample(record, turns, image=image, media=media, notes=notes, ops=ops)


# --- the original release: Annotations/<id>.xml + Sentences/<id>.txt --------------------------------


@dataclass
class EntitiesParams(FlickrParams):
    split_file: str = "train.txt"
    annotations_dir: str = "Annotations"
    sentences_dir: str = "Sentences"


def xml_boxes(annotation: dict, where: str) -> tuple[dict[str, list[list]], set[str]]:
    """(chain id -> 1-based [xmin, ymin, xmax, ymax] boxes, chain ids flagged nobndbox or scene)."""
    boxes: dict[str, list[list]] = {}
    unboxed: set[str] = set()
    for i, obj in enumerate(as_list(annotation.get("object"))):
        if not isinstance(obj, dict):
            raise SourceError(f"{where}: object[{i}] is not an element with children")
        names = [str(n).strip() for n in as_list(obj.get("name"))]
        box = obj.get("bndbox")
        for name in names:
            if isinstance(box, dict):
                boxes.setdefault(name, []).append([box.get(k) for k in ("xmin", "ymin", "xmax", "ymax")])
            else:
                unboxed.add(name)  # nobndbox or scene: no box to ground
    return boxes, unboxed


class Flickr30kEntities(_Flickr):
    name = "flickr30k_entities"
    Params = EntitiesParams
    description = "Flickr30k Entities (Annotations XML + Sentences markup) as ST DGC / grounded captions"

    def list_records(self):
        p = self.params
        xml = get_reader("xml")
        for item in get_reader("lines").read_file(self.src, p.split_file):
            image_id = item.data["line"]
            ann_rel, sent_rel = f"{p.annotations_dir}/{image_id}.xml", f"{p.sentences_dir}/{image_id}.txt"
            if not (self.src.is_file(ann_rel) and self.src.is_file(sent_rel)):
                yield RawRecord(p.split_file, item.locator, image_id, None,
                                f"{p.split_file} {item.locator}: {ann_rel} or {sent_rel} is missing")  # fmt: skip
                continue
            parsed = next(iter(xml.read_file(self.src, ann_rel)))
            lines = [ln for ln in get_reader("lines").read_file(self.src, sent_rel)]
            if p.sentences_per_image:
                lines = lines[: p.sentences_per_image]
            for n, line in enumerate(lines):  # the sentence's index, as MDETR's sentence_id counts it
                data = {"image_id": image_id, "xml": parsed.data, "sentence": line.data["line"]}
                error = parsed.error and f"{ann_rel}: {parsed.error}"
                yield RawRecord(sent_rel, line.locator, f"{image_id}-{n}", data, error)

    def to_sample(self, record: RawRecord) -> Sample:
        d, where = record.data, record.locator
        annotation = F.mapping(d, "xml", where)
        size = F.mapping(annotation, "size", f"{where}: xml")
        width, height = (
            F.number(size, "width", f"{where}: size", lo=1),
            F.number(size, "height", f"{where}: size", lo=1),
        )
        boxes, _ = xml_boxes(annotation, where)
        text, phrases = parse_sentence(F.text(d, "sentence", where))
        ops = Ops()
        grounded = []
        for start, end, chain, _types in phrases:
            pixel = boxes.get(chain, []) if chain != "0" else []
            what = f"{where}: chain {chain} box"
            boxes_of = [
                pixel_box(b, width=width, height=height, fmt="xyxy", origin=1, what=what, ops=ops) for b in pixel
            ]
            grounded.append((start, end, boxes_of))
        file_name = F.text(annotation, "filename", f"{where}: xml", default=f"{d['image_id']}.jpg")
        return self._grounded_sample(record, text, grounded, file_name=file_name, size=(width, height), ops=ops)

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        flickr_mini.write_entities(root, seed=seed)


# --- MDETR: final_flickr_{mergedGT,separateGT}_train.json ---------------------------------------------


@dataclass
class MdetrFlickrParams(FlickrParams):
    annotation_file: str = "mdetr_annotations/final_flickr_mergedGT_train.json"


class Flickr30kMdetr(_Flickr):
    name = "flickr30k_mdetr"
    Params = MdetrFlickrParams
    description = "Flickr30k Entities in MDETR's COCO form (tokens_positive) as ST DGC / grounded captions"

    def preflight(self) -> None:
        super().preflight()
        if re.search(r"_(val|test)\.json$", self.params.annotation_file):
            raise BuildError(f"{self.name}: {self.params.annotation_file} is an evaluation split; use a train file")

    def list_records(self):
        rel = self.params.annotation_file
        coco = load_json(self.src, rel)
        if not isinstance(coco, dict) or not isinstance(coco.get("images"), list):
            raise BuildError(f"{rel}: expected a COCO-format object with an 'images' list")
        anns: dict = {}
        for a in coco.get("annotations") or []:
            if isinstance(a, dict):
                anns.setdefault(a.get("image_id"), []).append(a)
        limit = self.params.sentences_per_image
        for i, image in enumerate(coco["images"]):
            where = f"images[{i}]"
            if not isinstance(image, dict):
                yield RawRecord(rel, where, f"i{i}", None, f"{rel} {where}: not an object")
                continue
            sentence_id = image.get("sentence_id")
            if limit and isinstance(sentence_id, int) and sentence_id >= limit:
                continue
            ident = image.get("id")
            sid = f"{image.get('original_img_id')}-{sentence_id}" if sentence_id is not None else f"{ident}"
            yield RawRecord(rel, where, sid, {"image": image, "annotations": anns.get(ident, [])})

    def to_sample(self, record: RawRecord) -> Sample:
        where = record.locator
        image = F.mapping(record.data, "image", where)
        text = F.text(image, "caption", where)
        width, height = F.number(image, "width", where, lo=1), F.number(image, "height", where, lo=1)
        ops = Ops()
        spans: dict[tuple[int, int], list[Box]] = {}
        for k, ann in enumerate(record.data.get("annotations") or []):
            box = pixel_box(F.need(ann, "bbox", f"{where} annotation {k}"), width=width, height=height, fmt="xywh",
                            origin=1, what=f"{where}: annotation {k} bbox", ops=ops)  # fmt: skip
            for span in F.listing(ann, "tokens_positive", f"{where} annotation {k}"):
                if not (isinstance(span, list) and len(span) == 2 and all(isinstance(v, int) for v in span)):
                    raise SourceError(f"{where}: annotation {k}: tokens_positive holds {span!r}, not [start, end]")
                spans.setdefault((span[0], span[1]), []).append(box)
        phrases = [(s, e, boxes) for (s, e), boxes in spans.items()]
        return self._grounded_sample(record, text, phrases, file_name=F.text(image, "file_name", where),
                                     size=(width, height), ops=ops)  # fmt: skip

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        flickr_mini.write_mdetr(root, seed=seed)
