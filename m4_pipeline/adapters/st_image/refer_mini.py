"""Miniatures of the three published RefCOCO forms, written from one small COCO world.

One world (a few COCO train2014 images, their annotations, and refs of RefCOCO, RefCOCO+ and
RefCOCOg in every split) is written in each real layout:

- ``refer``: ``<dataset>/refs(<splitBy>).p`` as Python 2 ``cPickle`` protocol-2 output (byte
  strings, one of them latin-1 that ASCII cannot decode) + ``<dataset>/instances.json``;
- ``mdetr``: ``mdetr_annotations/finetune_<dataset>_<split>.json``, one ``images`` entry per
  sentence, ids from one running counter across the files, annotations not in image order;
- ``parquet``: jxu124's ``<repo>/data/<split>-00000-of-00001-<hash>.parquet`` (repos
  ``refcoco``, ``refcocoplus``, ``refcocog``; its ``test`` split is RefCOCO's testA), with
  ``raw_anns`` / ``raw_image_info`` as JSON text.

The awkward parts kept on purpose: a box touching the right and bottom edges, a sentence whose
image is in RefCOCO+'s testB (decontamination), an image stored at another size than its
annotation says, refs of all splits in one pickle, and ``file_name`` values carrying the
annotation id (``COCO_train2014_<12 digits>_<ann id>.jpg``) as refer's do.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path

from ...synthetic import synthetic_image

# COCO image id -> (width, height) of the stored file
IMAGES = {9: (160, 120), 25: (120, 160), 30: (200, 150), 34: (160, 120), 42: (100, 80)}
STORED_SIZE = {42: (80, 100)}  # the file differs from its annotation (quarantined as bad_media)
# annotation id -> (image id, [x, y, w, h] pixels)
ANNS = {
    101: (9, [100, 20, 60, 100]),  # touches the right and bottom edges: x2 = 160 = W, y2 = 120 = H
    102: (9, [10.5, 30.25, 40, 50]),
    201: (25, [0, 0, 60, 80]),
    301: (30, [20, 30, 100, 60]),
    401: (34, [40, 40, 50, 50]),
    501: (42, [10, 10, 20, 20]),
}
SPLIT_BY = {"refcoco": "unc", "refcoco+": "unc", "refcocog": "umd"}
PARQUET_REPO = {"refcoco": "refcoco", "refcoco+": "refcocoplus", "refcocog": "refcocog"}
# dataset -> refs: (ref id, ann id, split, [(sent id, sentence)])
REFS = {
    "refcoco": [
        (1, 101, "train", [(1, "man on the right"), (2, "right guy")]),
        (2, 102, "train", [(3, "small red ball")]),
        (3, 201, "testA", [(4, "woman left")]),
        (4, 401, "testB", [(5, "the car in front")]),
        (5, 301, "train", [(6, "caf\xe9 table")]),  # a latin-1 byte in a Python 2 str
        (6, 301, "val", [(7, "table by the window")]),
        (7, 501, "train", [(8, "tiny square")]),  # its file is stored rotated: bad_media
    ],
    "refcoco+": [
        (11, 101, "testB", [(21, "guy in blue")]),  # image 9 is in RefCOCO+ testB
        (12, 301, "train", [(22, "table near window")]),
        (13, 201, "train", [(23, "person holding phone")]),
        (14, 102, "val", [(24, "ball")]),
    ],
    "refcocog": [
        (21, 201, "train", [(31, "a woman in a white shirt holding a phone")]),
        (22, 401, "test", [(32, "a silver car parked in front of the house")]),
        (23, 102, "val", [(33, "a small red ball on the grass")]),
        (24, 101, "train", [(34, "the man standing on the right side")]),
    ],
}


def coco_name(image_id: int) -> str:
    return f"COCO_train2014_{image_id:012d}.jpg"


def write_images(root: Path, image_dir: str = "train2014", *, seed: int = 0) -> None:
    folder = Path(root) / image_dir
    folder.mkdir(parents=True, exist_ok=True)
    for image_id, size in IMAGES.items():
        synthetic_image(seed + image_id, STORED_SIZE.get(image_id, size)).save(folder / coco_name(image_id), "JPEG")


def refs_of(dataset: str, splits: set[str] | None = None) -> list[dict]:
    """refer's ref dicts for ``dataset`` (all splits, or those in ``splits``)."""
    out = []
    for ref_id, ann_id, split, sentences in REFS[dataset]:
        if splits is not None and split not in splits:
            continue
        image_id = ANNS[ann_id][0]
        out.append({
            "sent_ids": [s for s, _ in sentences], "file_name": f"{coco_name(image_id)[:-4]}_{ann_id}.jpg",
            "ann_id": ann_id, "ref_id": ref_id, "image_id": image_id, "split": split,
            "sentences": [{"tokens": text.split(), "raw": text.capitalize(), "sent_id": s, "sent": text}
                          for s, text in sentences],
            "category_id": 1,
        })  # fmt: skip
    return out


def instances() -> dict:
    return {
        "images": [{"id": i, "file_name": coco_name(i), "width": w, "height": h} for i, (w, h) in IMAGES.items()],
        "annotations": [
            {
                "id": a,
                "image_id": i,
                "bbox": box,
                "area": box[2] * box[3],
                "iscrowd": 0,
                "category_id": 1,
                "segmentation": [[box[0], box[1], box[0] + box[2], box[1], box[0] + box[2], box[1] + box[3]]],
            }
            for a, (i, box) in ANNS.items()
        ],  # fmt: skip
        "categories": [{"id": 1, "name": "object", "supercategory": "object"}],
    }


# --- Python 2 cPickle, protocol 2 ---------------------------------------------------------------


def py2_pickle(obj) -> bytes:
    """``obj`` as Python 2's ``cPickle.dump(obj, f, 2)`` writes it: text as byte strings
    (``BINSTRING``, latin-1) unless it needs more than latin-1 (``BINUNICODE``)."""
    out = bytearray(b"\x80\x02")

    def put(o) -> None:
        if o is None:
            out.extend(b"N")
        elif isinstance(o, bool):
            out.extend(b"\x88" if o else b"\x89")
        elif isinstance(o, int):
            out.extend(b"K" + bytes([o]) if 0 <= o < 256 else b"J" + struct.pack("<i", o))
        elif isinstance(o, float):
            out.extend(b"G" + struct.pack(">d", o))
        elif isinstance(o, bytes):
            out.extend((b"U" + bytes([len(o)]) if len(o) < 256 else b"T" + struct.pack("<I", len(o))) + o)
        elif isinstance(o, str):
            try:
                put(o.encode("latin-1"))
            except UnicodeEncodeError:
                data = o.encode("utf-8")
                out.extend(b"X" + struct.pack("<I", len(data)) + data)
        elif isinstance(o, (list, tuple)):
            out.extend(b"]")
            if o:
                out.extend(b"(")
                for x in o:
                    put(x)
                out.extend(b"e")
        elif isinstance(o, dict):
            out.extend(b"}")
            if o:
                out.extend(b"(")
                for k, v in o.items():
                    put(k)
                    put(v)
                out.extend(b"u")
        else:
            raise TypeError(f"py2_pickle: {type(o).__name__} is not plain data")

    put(obj)
    out.extend(b".")
    return bytes(out)


# --- the three layouts --------------------------------------------------------------------------


def write_refer(root: Path, datasets=tuple(REFS), *, splits: set[str] | None = None) -> None:
    """``<dataset>/refs(<splitBy>).p`` + ``<dataset>/instances.json`` (refer's ``data/`` folder)."""
    for ds in datasets:
        folder = Path(root) / ds
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"refs({SPLIT_BY[ds]}).p").write_bytes(py2_pickle(refs_of(ds, splits)))
        (folder / "instances.json").write_text(json.dumps(instances()))


def write_mdetr(root: Path, *, splits=("train", "val")) -> None:
    """MDETR's ``finetune_<dataset>_<split>.json``: one image entry per sentence, one counter."""
    folder = Path(root) / "mdetr_annotations"
    folder.mkdir(parents=True, exist_ok=True)
    counter = 1000  # MDETR's counter runs on across datasets and splits
    for ds in REFS:
        for split in splits:
            images, annotations = [], []
            for ref in refs_of(ds, {split}):
                w, h = IMAGES[ref["image_id"]]
                for s in ref["sentences"]:
                    images.append({"file_name": coco_name(ref["image_id"]), "height": h, "width": w, "id": counter,
                                   "original_id": ref["image_id"], "caption": s["sent"], "dataset_name": ds,
                                   "tokens_negative": [[0, len(s["sent"])]]})  # fmt: skip
                    box = ANNS[ref["ann_id"]][1]
                    annotations.append({"area": box[2] * box[3], "iscrowd": 0, "image_id": counter, "category_id": 1,
                                        "id": counter, "bbox": box, "original_id": ref["ann_id"],
                                        "tokens_positive": [[0, len(s["sent"])]]})  # fmt: skip
                    counter += 1
            annotations.reverse()  # not in image order: entries are joined by image_id
            coco = {"info": {}, "licenses": [], "images": images, "annotations": annotations,
                    "categories": [{"supercategory": "object", "id": 1, "name": "object"}]}  # fmt: skip
            (folder / f"finetune_{ds}_{split}.json").write_text(json.dumps(coco))


_JXU124_SPLITS = {"train": "train", "val": "validation", "testA": "test", "test": "test", "testB": "testB"}


def write_parquet(root: Path) -> None:
    """jxu124's parquet copies: ``<repo>/data/<split>-00000-of-00001-<hash>.parquet``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    coco = instances()
    images = {i["id"]: i for i in coco["images"]}
    anns = {a["id"]: a for a in coco["annotations"]}
    for ds, repo in PARQUET_REPO.items():
        by_file: dict[str, list[dict]] = {}
        for ref in refs_of(ds):
            image = images[ref["image_id"]]
            x, y, w, h = anns[ref["ann_id"]]["bbox"]
            by_file.setdefault(_JXU124_SPLITS[ref["split"]], []).append({
                **ref, "raw_anns": json.dumps(anns[ref["ann_id"]]), "raw_image_info": json.dumps(image),
                "raw_sentences": json.dumps(ref["sentences"]), "image_path": f"coco/train2014/{image['file_name']}",
                "bbox": [float(x), float(y), float(x + w), float(y + h)],
                "captions": [s["sent"] for s in ref["sentences"]], "global_image_id": f"coco.{ref['image_id']}",
                "anns_id": str(ref["ann_id"]),
            })  # fmt: skip
        for name, rows in by_file.items():
            digest = hashlib.sha1(f"{repo}/{name}".encode()).hexdigest()[:16]
            path = Path(root) / repo / "data" / f"{name}-00000-of-00001-{digest}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=2)
