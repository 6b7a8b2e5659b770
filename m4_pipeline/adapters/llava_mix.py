"""The LLaVA-1.5 stage-2 instruction mix (``llava_v1_5_mix665k.json``) as multi-patch samples.

Layout::

    llava_v1_5_mix665k.json      [{id, image?, conversations: [{from, value}, ...]}, ...]
    coco/train2017/  gqa/images/  ocr_vqa/images/  textvqa/train_images/  vg/VG_100K/  vg/VG_100K_2/

``image`` is relative to the image root; the first human turn holds ``<image>``; some entries
have no image (text-only) and some ids repeat. Each image becomes one slot of anyres patches: a
base image plus the tiles of the best-fit grid, each patch recording its grid cell. A sample's key
is its id plus a short hash of its content (ids repeat in the released file).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..media.images import encode_jpeg, read_image_file
from ..media.patches import DEFAULT_PINPOINTS, AnyresTiler
from ..sample import Media, Sample
from ..synthetic import synthetic_image
from . import fields as F
from .base import Adapter, RawRecord, SourceError, SourceParams


@dataclass
class Params(SourceParams):
    annotation: str = "llava_v1_5_mix665k.json"
    image_root: str = "."
    pinpoints: list[list[int]] = field(default_factory=lambda: [list(p) for p in DEFAULT_PINPOINTS])
    patch_size: int = 384
    include_text_only: bool = False
    dataset_name: str = "LLaVA-1.5-mix665k"
    task_instruction: str = ""


class LLaVAMix(Adapter):
    name = "llava_mix"
    family = "m4"
    Params = Params
    description = "LLaVA-1.5 instruction mix (llava_v1_5_mix665k.json) as anyres multi-patch samples"
    reader = "json"

    def annotation_files(self) -> list[str]:
        return [self.params.annotation]

    def source_id(self, item) -> str:
        """The record's id and a short hash of its content: the released mix repeats ids (one COCO
        image, conversations from several sources), and a key must not depend on what precedes
        the record in the file (work units read from their own first record)."""
        if not isinstance(item.data, dict) or "id" not in item.data:
            return ""
        digest = hashlib.sha1(json.dumps(item.data, sort_keys=True).encode()).hexdigest()[:8]
        return f"{F.ident(item.data, 'id', item.locator)}-{digest}"

    def to_sample(self, record: RawRecord) -> Sample:
        p = self.params
        where = record.locator
        turns = F.listing(record.data, "conversations", where)
        pairs = []
        for i, t in enumerate(turns):
            pairs.append((F.text(t, "from", f"{where} turn {i}"), F.text(t, "value", f"{where} turn {i}")))
        image = F.need(record.data, "image", where, default=None)
        if image is None and not p.include_text_only:
            raise SourceError(f"{where}: text-only conversation (include_text_only: false)", reason="filtered")
        media, paths = [], []
        if image is not None:
            image = F.check_text(image, f"{where}: field 'image'")
            rel = f"{p.image_root}/{image}" if p.image_root not in ("", ".") else image
            source = read_image_file(self.src.file(rel, "image"), rel)
            tiler = AnyresTiler(pinpoints=p.pinpoints, patch_size=p.patch_size)
            rows, cols = tiler.grid_for(source.size)
            ops = [*source.ops, f"anyres:{rows}x{cols}"]
            for patch in tiler.tile(source.image):  # the decoded pixels: no second decode
                media.append(Media("patch", 0, encode_jpeg(patch.image), "jpg", grid=patch.grid,
                                   size=list(patch.image.size), ops=ops))  # fmt: skip
            paths.append(image)
        return self.m4_sample(record, pairs, images=paths, media=media, task_instruction=p.task_instruction)

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        """A small mix: COCO, GQA, OCR-VQA, TextVQA and VG images of varied aspect ratios, one
        text-only conversation, one id that repeats (as in the released file) and one exact
        duplicate conversation under another id."""
        root = Path(root)
        entries = [
            ("000000033471", "coco/train2017/000000033471.jpg", (640, 480)),
            ("2354786", "gqa/images/2354786.jpg", (500, 333)),
            ("1234567890", "ocr_vqa/images/1234567890.jpg", (300, 600)),
            ("0a0bc91825468c45", "textvqa/train_images/0a0bc91825468c45.jpg", (1024, 300)),
            ("VG_100K_2/1", "vg/VG_100K_2/1.jpg", (800, 600)),
            ("000000033471", "coco/train2017/000000052846.jpg", (480, 640)),
        ]
        items = []
        for i, (sid, rel, size) in enumerate(entries):
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            buf = io.BytesIO()
            synthetic_image(seed + 7000 + i, size).save(buf, "JPEG", quality=90)
            path.write_bytes(buf.getvalue())
            items.append({
                "id": sid, "image": rel,
                "conversations": [
                    {"from": "human", "value": "<image>\nWhat shapes are in the image?"},
                    {"from": "gpt", "value": f"The image shows {2 + i % 3} coloured shapes on a gradient."},
                    {"from": "human", "value": "Which colour dominates?"},
                    {"from": "gpt", "value": "A warm colour dominates the picture."},
                ],
            })  # fmt: skip
        items.append(dict(items[1], id="gqa-repeat-2354786"))  # an exact duplicate under another id
        items.append({
            "id": "text-only-0",
            "conversations": [
                {"from": "human", "value": "Write a haiku about data."},
                {"from": "gpt",
                 "value": "Rows of quiet bytes / shuffled, hashed and written down / the model reads on."},
            ],
        })  # fmt: skip
        (root / "llava_v1_5_mix665k.json").write_text(json.dumps(items, indent=1))
