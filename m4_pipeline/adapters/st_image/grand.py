"""GranD (GLaMM's Grounding-anything Dataset) as ST-Align stage-2 REC, REG and DGC samples.

Layout (HF ``MBZUAI/GranD``, released in parts; images from SA-1B)::

    annotations/sa_<N>.json     {"sa_<N>.jpg": {objects: [{id, bbox [x1, y1, x2, y2] px, labels,
                                 score, attributes, depth, segmentation?}], floating_objects: [...],
                                 short_captions: [{caption, details: [{phrase, id, ...}]}], ...}}
    images/sa_<N>.jpg

Verified (groundingLMM ``docs/GranD.md``, ``GranD/prepare_annotations/*.py``, the in-context
example ``sa_302406.json``): one JSON per image keyed by the image file name; object boxes are
pixel **xyxy**; ``attributes`` is null, a string or a list of strings that may start with a
stray "Assistant:" / "istant:" (GLaMM strips it); grounded short captions are
``short_captions[].details[]`` with a ``phrase`` and an object ``id``. Not verified: how a phrase
is located in its caption (``tokens_positive`` is used when present, else the phrase's first
occurrence after the previous one, case-insensitive, as GLaMM's GCG loader does) and the key of
GranD's dense captions (``caption_field`` is a parameter). The files carry no image size: boxes
are normalised by the decoded image's size.

Tasks, one record each:

- ``rec`` / ``reg``: one per object with an attribute (GLaMM's referring-expression rule: the
  attribute that names one of the object's labels, else the first);
- ``dgc``: one per grounded caption, phrases interleaved with their objects' boxes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from ...coords import Ops
from ...errors import BuildError, SourceError
from ...readers import load_json
from ...sample import Sample
from ...synthetic import synthetic_image
from .. import fields as F
from ..base import RawRecord
from .common import Grounding, ImageParams, STImageAdapter, check_task, interleave, join_path, pixel_box

TASKS = ("rec", "reg", "dgc")
_PREFIX = re.compile(r"(?i)\b(?:assistant|istant):?\s*")


@dataclass
class GrandParams(ImageParams):
    task: str = "rec"  # rec | reg | dgc
    annotation_glob: str = "annotations/*.json"
    image_dir: str = "images"
    image_prefix: str = "sa1b"  # the record's image path: <prefix>/sa_<N>.jpg
    caption_field: str = "short_captions"  # DGC captions: [{caption, details: [{phrase, id}]}]
    rec_prompt: str = "@st_image/rec_prompt"
    rec_answer: str = "@st_image/rec_answer"
    reg_prompt: str = "@st_image/reg_prompt"
    reg_answer: str = "@st_image/reg_answer"
    dgc_prompt: str = "@st_image/dgc_prompt"
    grounded_phrase: str = "@st_image/grounded_phrase"
    box_separator: str = ", "


def clean_attribute(text: str) -> str:
    return _PREFIX.sub("", text).strip()


def referring_text(obj: dict) -> str | None:
    """GLaMM's referring expression of an object: an attribute naming one of its labels, else the first."""
    attributes = obj.get("attributes")
    if isinstance(attributes, str):
        attributes = [attributes]
    if not isinstance(attributes, list):
        return None
    cleaned = [clean_attribute(a) for a in attributes if isinstance(a, str) and clean_attribute(a)]
    labels = [str(lb).replace("_", " ") for lb in obj.get("labels") or [] if isinstance(lb, str)]
    for attr in cleaned:
        if any(label in attr for label in labels):
            return attr
    return cleaned[0] if cleaned else None


class GranD(STImageAdapter):
    name = "grand"
    Params = GrandParams
    description = "GranD per-image JSON (SA-1B) as ST-Align stage-2 REC, REG and DGC"

    def preflight(self) -> None:
        check_task(self.params.task, TASKS, self.name)

    def list_records(self):
        p = self.params
        files = self.src.glob(p.annotation_glob)
        if not files:
            raise BuildError(f"{self.name}: no annotation file matches {p.annotation_glob} under {self.src.root}")
        for rel in files:
            stem = PurePosixPath(rel).stem
            data = load_json(self.src, rel)
            if not (isinstance(data, dict) and len(data) == 1 and isinstance(next(iter(data.values())), dict)):
                yield RawRecord(rel, "file", stem, None, f"{rel}: expected {{<image file>: {{objects, ...}}}}")
                continue
            image, ann = next(iter(data.items()))
            if p.task == "dgc":
                yield from self._caption_records(rel, stem, image, ann)
            else:
                yield from self._object_records(rel, stem, image, ann)

    def _object_records(self, rel: str, stem: str, image: str, ann: dict):
        for i, obj in enumerate(ann.get("objects") or []):
            if not isinstance(obj, dict):
                yield RawRecord(rel, f"objects[{i}]", f"{stem}-o{i}", None, f"{rel} objects[{i}]: not an object")
                continue
            text = referring_text(obj)
            if text is None:
                continue  # GLaMM's rule: objects without attributes have no referring expression
            ident = obj.get("id", i)
            data = {"file_name": image, "expression": text, "bbox": obj.get("bbox"), "id": ident}
            yield RawRecord(rel, f"objects[{i}]", f"{stem}-o{ident}", data)

    def _caption_records(self, rel: str, stem: str, image: str, ann: dict):
        boxes = {str(o.get("id")): o.get("bbox") for key in ("objects", "floating_objects")
                 for o in ann.get(key) or [] if isinstance(o, dict)}  # fmt: skip
        for j, caption in enumerate(ann.get(self.params.caption_field) or []):
            where = f"{self.params.caption_field}[{j}]"
            if not isinstance(caption, dict):
                yield RawRecord(rel, where, f"{stem}-c{j}", None, f"{rel} {where}: not an object")
                continue
            details = caption.get("details") if isinstance(caption.get("details"), list) else []
            used = {str(i) for d in details if isinstance(d, dict) for i in _ids(d)}
            data = {"file_name": image, "caption": caption.get("caption"), "details": details,
                    "boxes": {i: boxes[i] for i in sorted(used) if i in boxes}}  # fmt: skip
            yield RawRecord(rel, where, f"{stem}-c{j}", data)

    def to_sample(self, record: RawRecord) -> Sample:
        p, d, where = self.params, record.data, record.locator
        file_name = F.text(d, "file_name", where)
        media = self.load_image(join_path(p.image_dir, file_name), size=None, where=where)
        width, height = media.size
        ops, notes = Ops(), {}
        if p.task == "dgc":
            text, groundings = self._grounded_caption(d, width, height, where, ops)
            answer, values = interleave(text, groundings, phrase_template=p.grounded_phrase,
                                        separator=p.box_separator, ops=ops)  # fmt: skip
            turns = [("human", self.template(notes, p.dgc_prompt, record, "human"), {}), ("gpt", answer, values)]
        else:
            box = pixel_box(F.need(d, "bbox", where), width=width, height=height, fmt="xyxy", what=f"{where}: bbox",
                            ops=ops)  # fmt: skip
            values = {"expression": F.text(d, "expression", where), "box": box}
            prompt, answer = (p.rec_prompt, p.rec_answer) if p.task == "rec" else (p.reg_prompt, p.reg_answer)
            turns = [("human", self.template(notes, prompt, record, "human"), values),
                     ("gpt", self.template(notes, answer, record, "gpt"), values)]  # fmt: skip
        return self.image_sample(record, turns, image=join_path(p.image_prefix, file_name), media=media,
                                 notes=notes, ops=ops)  # fmt: skip

    def _grounded_caption(self, d: dict, width: int, height: int, where: str, ops: Ops):
        text = F.text(d, "caption", where).strip().strip('"').strip()
        lowered, pos, groundings = text.lower(), 0, []
        for k, detail in enumerate(d.get("details") or []):
            if not isinstance(detail, dict):
                raise SourceError(f"{where}: details[{k}] is not an object")
            span = _span(detail, lowered, pos, where)
            if span is None:
                ops.add("phrase_not_in_caption")
                continue
            boxes = []
            for ident in _ids(detail):
                raw = d["boxes"].get(str(ident))
                if raw is None:
                    raise SourceError(f"{where}: details[{k}] names object {ident}, which has no box")
                boxes.append(pixel_box(raw, width=width, height=height, fmt="xyxy",
                                       what=f"{where}: object {ident} bbox", ops=ops))  # fmt: skip
            groundings.append(Grounding(span[0], span[1], tuple(boxes)))
            pos = max(pos, span[1])
        if not any(g.boxes for g in groundings):
            raise SourceError(f"{where}: no phrase of the caption has a box", reason="filtered")
        return text, groundings

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        _write_grand_miniature(Path(root), seed=seed)


def _ids(detail: dict) -> list[Any]:
    for key in ("ids", "object_ids"):
        if isinstance(detail.get(key), list):
            return list(detail[key])
    return [detail["id"]] if detail.get("id") is not None else []


def _span(detail: dict, lowered: str, pos: int, where: str) -> tuple[int, int] | None:
    tokens = detail.get("tokens_positive")
    if tokens is not None:
        first = tokens[0] if tokens and isinstance(tokens[0], list) else tokens
        if not (isinstance(first, list) and len(first) == 2 and all(isinstance(v, int) for v in first)):
            raise SourceError(f"{where}: tokens_positive {tokens!r} is not [start, end]")
        return first[0], first[1]
    phrase = detail.get("phrase")
    if not isinstance(phrase, str) or not phrase.strip():
        raise SourceError(f"{where}: a caption detail has no phrase")
    start = lowered.find(phrase.strip().lower(), pos)
    return None if start < 0 else (start, start + len(phrase.strip()))


def _write_grand_miniature(root: Path, *, seed: int = 0) -> None:
    """Two images: attributes as null / string / list (with GLaMM's stray "istant:" prefixes), a box
    touching the image's right edge, a caption phrase that is not in its caption, floating objects."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(parents=True, exist_ok=True)
    worlds = {
        "sa_10036163": ((240, 160), {
            "objects": [
                {"id": 0, "bbox": [10.5, 20.0, 90.0, 140.0], "labels": ["person"], "score": 0.95,
                 "attributes": ["istant: a woman in a red coat", "the person is standing"], "depth": 310.2},
                {"id": 1, "bbox": [150.0, 40.0, 240.0, 120.0], "labels": ["dining_table"], "score": 0.9,
                 "attributes": "Assistant: a wooden dining table", "depth": 512.0},
                {"id": 2, "bbox": [100.0, 100.0, 130.0, 150.0], "labels": ["cup"], "score": 0.6,
                 "attributes": None, "depth": 480.1},
            ],
            "floating_objects": [{"id": 7, "bbox": [0.0, 0.0, 240.0, 60.0], "labels": ["wall"], "score": 0.7,
                                  "attributes": None}],
            "landmark": {"category": "Indoor scene", "fine_category": "Restaurant"},
            "captions": ["a woman standing next to a table"],
            "short_captions": [
                {"caption": "A woman in a red coat stands next to a wooden table in front of a wall.",
                 "details": [{"phrase": "a woman in a red coat", "id": 0}, {"phrase": "a wooden table", "id": 1},
                             {"phrase": "a wall", "id": 7}]},
                {"caption": "\"Dinner time.\"", "details": [{"phrase": "a cup of tea", "id": 2}]},
            ],
        }),
        "sa_10036241": ((160, 200), {
            "objects": [{"id": 3, "bbox": [20.0, 30.0, 120.0, 190.0], "labels": ["dog"], "score": 0.93,
                         "attributes": ["a brown dog sitting"], "depth": 100.0}],
            "floating_objects": [],
            "short_captions": [{"caption": "A brown dog sitting on the grass.",
                                "details": [{"phrase": "A brown dog", "id": 3, "tokens_positive": [0, 11]}]}],
        }),
    }  # fmt: skip
    for n, (stem, (size, ann)) in enumerate(worlds.items()):
        synthetic_image(seed + n, size).save(root / "images" / f"{stem}.jpg", "JPEG")
        (root / "annotations" / f"{stem}.json").write_text(json.dumps({f"{stem}.jpg": ann}))
