"""RefCOCO / RefCOCO+ / RefCOCOg evaluation splits (val, testA, testB, test), in any published form.

Three forms are read, per dataset the first one present:

- MDETR's COCO-format JSON (``[final_|finetune_]{refcoco,refcoco+,refcocog}_{val,testA,testB,test}.json``
  under the root or ``mdetr_annotations/``), which LLaVA-ST's evaluation reads under its own names
  (``refcoco_testA.json``; ``inference/config.yaml``, ``RefCOCOEvalDataset``): one ``images[]``
  entry per expression with ``file_name``, ``caption`` and ``original_id`` (the COCO image id);
- refer's ``<dataset>/refs(<splitBy>).p`` (the recommended splitBy: unc, unc, umd) with
  ``<dataset>/instances.json``, the pickle read by :mod:`m4_pipeline.readers.safe_pickle` (plain
  data only; a pickle naming a class is refused with a clear error);
- jxu124's parquet copies ``{refcoco,refcocoplus,refcocog}/data/*.parquet``: every row whose own
  ``split`` is not ``train`` (jxu124's file named "test" holds RefCOCO's testA).

Every item names the COCO train2014 image of its expression (``coco:<id>``), so training samples
of any source over the same COCO image (RefCOCOg train images that are RefCOCO test images, COCO
images in other mixtures) are caught by id even without the image files, and by pixels when the
images are present::

    train2014/COCO_train2014_<id>.jpg   (or images/, sources/, images/mscoco/images/train2014/)

NOT VERIFIED on the real files: the MDETR field set beyond ``file_name``/``caption``/``id``
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
IMAGE_DIRS = ("train2014", "images", "sources", "images/mscoco/images/train2014", "coco/train2014")
DATASETS = ("refcoco", "refcoco+", "refcocog")
SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}
PARQUET_REPO = {"refcoco": "refcoco", "refcoco+": "refcocoplus", "refcocog": "refcocog"}
SPLIT_NAMES = {"validation": "val"}  # jxu124's names of refer's splits
_ID_IN_NAME = re.compile(r"(\d{6,12})\.(?:jpe?g|png)$", re.IGNORECASE)


def _coco_id(image: dict, where: str) -> int:
    if isinstance(image.get("original_id"), int):
        return image["original_id"]
    match = _ID_IN_NAME.search(str(image.get("file_name", "")))
    if not match:
        raise BenchmarkLayoutError(f"{where}: no 'original_id' and no COCO id in file_name {image.get('file_name')!r}")
    return int(match.group(1))


def _image_item(root: Path, dataset: str, split: str, item_id: str, text: str, name: str, coco_id: int) -> BenchItem:
    return BenchItem(
        benchmark=f"{NAME}/{dataset}_{SPLIT_NAMES.get(split, split)}",
        item_id=item_id,
        questions=[text],
        images=[first_existing([root / d / name for d in IMAGE_DIRS])],
        image_ids=[f"coco:{coco_id}"],
    )


def _mdetr_files(root: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for path in sorted([*root.glob("*.json"), *root.glob("mdetr_annotations/*.json")]):
        m = FILE_RE.match(path.name)
        if m:
            found.setdefault(m.group(1), []).append(path)
    return found


def _read_mdetr(root: Path, path: Path) -> Iterator[BenchItem]:
    dataset, split = FILE_RE.match(path.name).groups()
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise BenchmarkLayoutError(f"{path.name}: expected a COCO-format object with an 'images' list")
    for pos, image in enumerate(data["images"]):
        where = f"{path.name} images[{pos}]"
        if not isinstance(image, dict) or "file_name" not in image:
            raise BenchmarkLayoutError(f"{where}: expected an object with 'file_name'")
        item_id = str(image.get("id", f"index {pos}"))
        yield _image_item(root, dataset, split, item_id, str(image.get("caption", "")), image["file_name"],
                          _coco_id(image, where))  # fmt: skip


def _refer_name(image: dict | None, ref: dict) -> str:
    if image and image.get("file_name"):
        return image["file_name"]
    return coco_file_name(int(ref["image_id"]))


def _eval_refs(refs: list, dataset: str, images: dict, where: str, root: Path) -> Iterator[BenchItem]:
    for i, ref in enumerate(refs):
        if not isinstance(ref, dict) or "image_id" not in ref:
            raise BenchmarkLayoutError(f"{where} index {i}: expected a ref with 'image_id'")
        split = ref.get("split")
        if split == "train" or not isinstance(split, str):
            continue
        for j, sentence in enumerate(ref.get("sentences") or []):
            text = sentence.get("sent", "") if isinstance(sentence, dict) else ""
            sent_id = sentence.get("sent_id", j) if isinstance(sentence, dict) else j
            yield _image_item(root, dataset, split, f"ref {ref.get('ref_id', i)} sent {sent_id}", str(text),
                              _refer_name(images.get(ref["image_id"]), ref), int(ref["image_id"]))  # fmt: skip


def _read_refer(root: Path, dataset: str, path: Path) -> Iterator[BenchItem]:
    from ...paths import AnnotationFileError
    from ...readers import loads_data

    try:
        refs = loads_data(path.read_bytes(), f"{dataset}/{path.name}")
    except AnnotationFileError as err:
        raise BenchmarkLayoutError(str(err)) from err
    if not isinstance(refs, list):
        raise BenchmarkLayoutError(f"{dataset}/{path.name}: expected a list of refs")
    instances = path.parent / "instances.json"
    coco = load_json(instances) if instances.is_file() else {}
    images = {i.get("id"): i for i in coco.get("images") or [] if isinstance(i, dict)}
    yield from _eval_refs(refs, dataset, images, f"{dataset}/{path.name}", root)


def _read_parquet(root: Path, dataset: str, files: list[Path]) -> Iterator[BenchItem]:
    import pyarrow.parquet as pq

    for path in files:
        try:
            rows = pq.read_table(path).to_pylist()
        except Exception as err:  # pyarrow raises ArrowInvalid / OSError for a bad file
            raise BenchmarkLayoutError(f"{path}: not a readable parquet file: {err}") from err
        refs, images = [], {}
        for row in rows:
            sentences, info = row.get("sentences"), row.get("raw_image_info") or row.get("image_info")
            refs.append({**row, "sentences": json.loads(sentences) if isinstance(sentences, str) else sentences})
            if isinstance(info, str):
                info = json.loads(info)
            if isinstance(info, dict):
                images[row.get("image_id")] = info
        yield from _eval_refs(refs, dataset, images, str(path.relative_to(root)), root)


def read(root: Path) -> Iterator[BenchItem]:
    root = Path(root)
    mdetr = _mdetr_files(root)
    found = False
    for dataset in DATASETS:
        refer = root / dataset / f"refs({SPLIT_BY[dataset]}).p"
        parquet = sorted((root / PARQUET_REPO[dataset] / "data").glob("*.parquet"))
        if mdetr.get(dataset):
            for path in mdetr[dataset]:
                yield from _read_mdetr(root, path)
        elif refer.is_file():
            yield from _read_refer(root, dataset, refer)
        elif parquet:
            yield from _read_parquet(root, dataset, parquet)
        else:
            continue
        found = True
    if not found:
        raise BenchmarkLayoutError(
            f"{NAME}: no RefCOCO evaluation data under {root} (MDETR JSON such as finetune_refcoco_testA.json, "
            "refer's <dataset>/refs(<splitBy>).p, or jxu124's <repo>/data/*.parquet)"
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
