"""Miniatures of Flickr30k Entities (the original release and MDETR's COCO form), one small world.

Awkward parts kept on purpose: a 1-based box starting at pixel (1, 1) and one ending at the
image's last pixel, an entity with two boxes ("two dogs"), one object element naming two chains,
``nobndbox`` / ``scene`` objects, a ``notvisual`` phrase (chain 0), a sentence whose only phrase is
a scene (no box: filtered), a train id whose XML is missing, an image file that is missing, and
in the MDETR form ``width`` / ``height`` as strings (MDETR copies them from xmltodict).
"""

from __future__ import annotations

import json
from pathlib import Path

from ...synthetic import synthetic_image

SPLITS = {"train": ["1000092795", "10002456", "1000268201", "1000366164"], "val": ["1000344755"],
          "test": ["1007129816"]}  # fmt: skip
SIZES = {"1000092795": (200, 150), "10002456": (150, 200), "1000268201": (160, 120), "1000344755": (160, 120),
         "1007129816": (160, 120)}  # fmt: skip
MISSING_XML = {"1000366164"}
MISSING_IMAGE = {"1000268201"}
# image id -> objects: (chain ids, 1-based [xmin, ymin, xmax, ymax] or "nobndbox" / "scene")
OBJECTS = {
    "1000092795": [
        (["18"], [1, 1, 100, 75]),  # starts at the first pixel: 0-based [0, 0, 99, 74]
        (["19"], [30, 40, 80, 120]),
        (["20"], [110, 20, 150, 60]),  # "two dogs": two boxes of one chain
        (["20"], [140, 50, 200, 150]),  # ends at the last pixel (xmax = width, ymax = height)
        (["21"], "scene"),
        (["22"], "nobndbox"),
    ],
    "10002456": [(["1"], [5, 10, 60, 100]), (["2", "3"], [70, 20, 140, 190])],  # one element, two chains
    "1000268201": [(["5"], [10, 10, 60, 60])],
    "1000344755": [(["7"], [20, 20, 90, 100])],
    "1007129816": [(["9"], [15, 15, 80, 100])],
}
SENTENCES = {
    "1000092795": [
        "[/EN#18/people A child] in [/EN#19/clothing a pink dress] is climbing up past "
        "[/EN#20/animals two dogs] in [/EN#21/scene an entry way] .",
        "[/EN#18/people A little girl] climbs [/EN#0/notvisual the stairs] near [/EN#22/other a mat] .",
        "[/EN#21/scene An entry way] with stairs .",
    ],
    "10002456": [
        "[/EN#1/people Several men] in [/EN#2/clothing/other hard hats] are operating "
        "[/EN#3/other a giant pulley system] ."
    ],  # fmt: skip
    "1000268201": ["[/EN#5/people A woman] waits ."],
    "1000344755": ["[/EN#7/animals A brown dog] runs ."],
    "1007129816": ["[/EN#9/people A man with pierced ears] is wearing glasses and an orange hat ."],
}


def _xml(image_id: str) -> str:
    w, h = SIZES[image_id]
    objects = []
    for names, box in OBJECTS[image_id]:
        name_xml = "".join(f"<name>{n}</name>" for n in names)
        if isinstance(box, list):
            inner = "<bndbox>" + "".join(f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
            inner += "</bndbox>"
        else:
            inner = f"<nobndbox>{int(box == 'nobndbox')}</nobndbox><scene>{int(box == 'scene')}</scene>"
        objects.append(f"<object>{name_xml}{inner}</object>")
    return (f"<annotation><filename>{image_id}.jpg</filename><size><width>{w}</width><height>{h}</height>"
            f"<depth>3</depth></size>{''.join(objects)}</annotation>\n")  # fmt: skip


def write_images(root: Path, *, seed: int = 0, image_dir: str = "flickr30k-images") -> None:
    folder = Path(root) / image_dir
    folder.mkdir(parents=True, exist_ok=True)
    for image_id, size in SIZES.items():
        if image_id not in MISSING_IMAGE:
            synthetic_image(seed + int(image_id) % 9973, size).save(folder / f"{image_id}.jpg", "JPEG")


def write_entities(root: Path, *, seed: int = 0) -> None:
    """``{train,val,test}.txt``, ``Annotations/<id>.xml``, ``Sentences/<id>.txt``, the images."""
    root = Path(root)
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    (root / "Sentences").mkdir(parents=True, exist_ok=True)
    for split, ids in SPLITS.items():
        (root / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
        for image_id in ids:
            if image_id in MISSING_XML:
                continue
            (root / "Annotations" / f"{image_id}.xml").write_text(_xml(image_id))
            (root / "Sentences" / f"{image_id}.txt").write_text("\n".join(SENTENCES[image_id]) + "\n")
    write_images(root, seed=seed)


def _words_and_phrases(markup: str) -> tuple[str, list[tuple[int, int, str]]]:
    """MDETR's reading of a Sentences line: the words joined by spaces, phrase spans and chain ids."""
    from .flickr30k import parse_sentence

    text, phrases = parse_sentence(markup)
    return text, [(s, e, chain) for s, e, chain, _ in phrases]


def write_mdetr(root: Path, *, seed: int = 0, merged: bool = True) -> None:
    """``mdetr_annotations/final_flickr_{mergedGT,separateGT}_{train,val,test}.json``, the images."""
    folder = Path(root) / "mdetr_annotations"
    folder.mkdir(parents=True, exist_ok=True)
    counter = 0
    for split, ids in SPLITS.items():
        images, annotations = [], []
        for image_id in ids:
            if image_id in MISSING_XML:
                continue
            w, h = SIZES[image_id]
            boxes: dict[str, list[list[float]]] = {}
            for names, box in OBJECTS[image_id]:
                if isinstance(box, list):
                    for n in names:
                        boxes.setdefault(n, []).append([box[0], box[1], box[2] - box[0], box[3] - box[1]])
            if merged:
                boxes = {n: [_merge(b)] for n, b in boxes.items()}
            for sent_id, markup in enumerate(SENTENCES[image_id]):
                caption, phrases = _words_and_phrases(markup)
                images.append({"file_name": f"{image_id}.jpg", "height": str(h), "width": str(w), "id": counter,
                               "caption": caption, "dataset_name": "flickr", "tokens_negative": [[0, len(caption)]],
                               "sentence_id": sent_id, "original_img_id": int(image_id),
                               "tokens_positive_eval": [[[s, e]] for s, e, c in phrases if c in boxes]})  # fmt: skip
                by_box: dict[tuple, list] = {}  # MDETR merges entities with the same box into one annotation
                for s, e, chain in phrases:
                    for b in boxes.get(chain, []) if chain != "0" else []:
                        by_box.setdefault(tuple(b), []).append([s, e])
                for b, spans in by_box.items():
                    annotations.append({"area": b[2] * b[3], "iscrowd": 0, "image_id": counter, "category_id": 1,
                                        "id": len(annotations), "bbox": list(b), "tokens_positive": spans})  # fmt: skip
                counter += 1
        coco = {"info": [], "licenses": [], "images": images, "annotations": annotations,
                "categories": [{"supercategory": "object", "id": 1, "name": "object"}]}  # fmt: skip
        kind = "mergedGT" if merged else "separateGT"
        (folder / f"final_flickr_{kind}_{split}.json").write_text(json.dumps(coco))
    write_images(root, seed=seed)


def _merge(boxes: list[list[float]]) -> list[float]:
    x1, y1 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x2, y2 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
    return [x1, y1, x2 - x1, y2 - y1]
