"""RefCOCO / RefCOCO+ / RefCOCOg evaluation splits, from their COCO-format JSON exports.

The original release (``refs(unc).p``) is a pickle, which this pipeline never loads. We read
the JSON export that MDETR published (``mdetr_annotations/final_refcoco_testA.json`` and
``finetune_*`` files) and that LLaVA-ST's evaluation reads under its own names
(``refcoco_testA.json``, ``refcoco+_val.json``, ``refcocog_test.json``; LLaVA-ST
``inference/config.yaml`` and ``RefCOCOEvalDataset``): COCO format, one ``images[]`` entry per
referring expression with ``file_name`` (``COCO_train2014_000000581857.jpg``), ``caption`` (the
expression) and, in MDETR's files, ``original_id`` (the COCO image id). We chose it because
it is plain JSON, carries the split in the file name, and names the COCO train2014 image of
every item, so training samples over COCO (e.g. LLaVA's ``coco/train2017/``) are caught by id
even without the images. Train splits are skipped (they are not a benchmark).

Layout::

    [final_|finetune_]{refcoco,refcoco+,refcocog}_{val,testA,testB,test}.json
    train2014/COCO_train2014_<id>.jpg        (or images/ or sources/; hashed when present)

NOT VERIFIED on the real files: the field set beyond ``file_name``/``caption``/``id``
(``original_id`` falls back to the digits of ``file_name``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from ...synthetic import synthetic_image
from .base import BenchItem, BenchmarkLayoutError, first_existing, load_json

NAME = "refcoco"
FILE_RE = re.compile(r"^(?:final_|finetune_)?(refcoco|refcoco\+|refcocog)_(val|testA|testB|test)\.json$")
IMAGE_DIRS = ("train2014", "images", "sources")
_ID_IN_NAME = re.compile(r"(\d{6,12})\.(?:jpe?g|png)$", re.IGNORECASE)


def _coco_id(image: dict, where: str) -> int:
    if isinstance(image.get("original_id"), int):
        return image["original_id"]
    match = _ID_IN_NAME.search(str(image.get("file_name", "")))
    if not match:
        raise BenchmarkLayoutError(f"{where}: no 'original_id' and no COCO id in file_name {image.get('file_name')!r}")
    return int(match.group(1))


def read(root: Path) -> Iterator[BenchItem]:
    root = Path(root)
    files = sorted(p for p in root.glob("*.json") if FILE_RE.match(p.name))
    if not files:
        raise BenchmarkLayoutError(f"{NAME}: no RefCOCO evaluation JSON (e.g. final_refcoco_testA.json) under {root}")
    for path in files:
        dataset, split = FILE_RE.match(path.name).groups()
        data = load_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise BenchmarkLayoutError(f"{path.name}: expected a COCO-format object with an 'images' list")
        for pos, image in enumerate(data["images"]):
            where = f"{path.name} images[{pos}]"
            if not isinstance(image, dict) or "file_name" not in image:
                raise BenchmarkLayoutError(f"{where}: expected an object with 'file_name'")
            name = image["file_name"]
            yield BenchItem(
                benchmark=f"{NAME}/{dataset}_{split}",
                item_id=str(image.get("id", f"index {pos}")),
                questions=[str(image.get("caption", ""))],
                images=[first_existing([root / d / name for d in IMAGE_DIRS])],
                image_ids=[f"coco:{_coco_id(image, where)}"],
            )


def coco_file_name(coco_id: int) -> str:
    return f"COCO_train2014_{coco_id:012d}.jpg"


_EXPRESSIONS = ("man on the left in a red shirt", "the green bowl closest to the camera", "woman holding the umbrella")


def write_miniature(root: Path, *, seed: int = 9500) -> None:
    """MDETR-style files for refcoco testA, refcoco+ testB and refcocog val, two images each."""
    root = Path(root)
    (root / "train2014").mkdir(parents=True, exist_ok=True)
    for f_index, (dataset, split) in enumerate((("refcoco", "testA"), ("refcoco+", "testB"), ("refcocog", "val"))):
        images, annotations = [], []
        for k in range(2):
            coco_id = 500000 + f_index * 100 + k
            name = coco_file_name(coco_id)
            synthetic_image(seed + coco_id, (320, 240)).save(root / "train2014" / name, "JPEG", quality=92)
            for e in range(2):  # several expressions per image, one images[] entry each
                ident = len(images)
                expr = f"{_EXPRESSIONS[(k + e) % len(_EXPRESSIONS)]} number {f_index}{k}"
                images.append(
                    {
                        "file_name": name,
                        "height": 240,
                        "width": 320,
                        "id": ident,
                        "original_id": coco_id,
                        "caption": expr,
                        "dataset_name": dataset,
                        "tokens_negative": [[0, len(expr)]],
                    }
                )
                annotations.append(
                    {
                        "area": 900.0,
                        "iscrowd": 0,
                        "image_id": ident,
                        "category_id": 1,
                        "id": ident,
                        "bbox": [20.0 + 10 * e, 30.0, 30.0, 30.0],
                        "tokens_positive": [[0, len(expr)]],
                    }
                )
        coco = {"info": {}, "licenses": [], "images": images, "annotations": annotations,
                "categories": [{"supercategory": "object", "id": 1, "name": "object"}]}  # fmt: skip
        (root / f"final_{dataset}_{split}.json").write_text(json.dumps(coco))
