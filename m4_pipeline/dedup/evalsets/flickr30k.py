"""Flickr30k Entities test split (phrase grounding), in its original or MDETR form.

Layouts (github.com/BryanPlummer/flickr30k_entities; MDETR ``scripts/pre-training/flickr_combined.py``)::

    test.txt                       the 1,000 test image ids, one per line
    Sentences/<id>.txt             five sentences with [/EN#<chain>/<type> phrase] markup
    flickr30k-images/<id>.jpg      (or images/<id>.jpg) the Flickr30k images

or MDETR's ``final_flickr_{mergedGT,separateGT}_test.json`` (under the root or
``mdetr_annotations/``): one ``images`` entry per sentence with ``original_img_id`` and ``caption``.

One item per test image: its sentences (markup removed) are the questions, its file the image
(hashed when present: training samples over the same picture are found by pixels), and
``flickr30k:<id>`` its dataset image id.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .base import BenchItem, BenchmarkLayoutError, first_existing, load_json

NAME = "flickr30k"
SPLIT_FILE = "test.txt"
IMAGE_DIRS = ("flickr30k-images", "images", "flickr30k_images")
MDETR_FILES = ("final_flickr_mergedGT_test.json", "final_flickr_separateGT_test.json")


def _item(root: Path, image_id: str, sentences: list[str]) -> BenchItem:
    return BenchItem(
        benchmark=f"{NAME}/test",
        item_id=image_id,
        questions=sentences,
        images=[first_existing([root / d / f"{image_id}.jpg" for d in IMAGE_DIRS])],
        image_ids=[f"flickr30k:{image_id}"],
    )


def _read_entities(root: Path) -> Iterator[BenchItem]:
    from ...adapters.st_image.flickr30k import parse_sentence
    from ...errors import SourceError

    ids = [line.strip() for line in (root / SPLIT_FILE).read_text(encoding="utf-8").splitlines() if line.strip()]
    for image_id in ids:
        path = root / "Sentences" / f"{image_id}.txt"
        sentences = []
        if path.is_file():
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    sentences.append(parse_sentence(line.strip())[0])
                except SourceError as err:
                    raise BenchmarkLayoutError(f"Sentences/{image_id}.txt line {n}: {err}") from err
        yield _item(root, image_id, sentences)


def _read_mdetr(path: Path, root: Path) -> Iterator[BenchItem]:
    data = load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise BenchmarkLayoutError(f"{path.name}: expected a COCO-format object with an 'images' list")
    by_image: dict[str, list[str]] = {}
    for pos, image in enumerate(data["images"]):
        if not isinstance(image, dict) or "original_img_id" not in image:
            raise BenchmarkLayoutError(f"{path.name} images[{pos}]: expected an object with 'original_img_id'")
        by_image.setdefault(str(image["original_img_id"]), []).append(str(image.get("caption", "")))
    for image_id, sentences in by_image.items():
        yield _item(root, image_id, sentences)


def read(root: Path) -> Iterator[BenchItem]:
    root = Path(root)
    if (root / SPLIT_FILE).is_file():
        yield from _read_entities(root)
        return
    for folder in (root, root / "mdetr_annotations"):
        for name in MDETR_FILES:
            if (folder / name).is_file():
                yield from _read_mdetr(folder / name, root)
                return
    raise BenchmarkLayoutError(f"{NAME}: neither {SPLIT_FILE} nor {' / '.join(MDETR_FILES)} under {root}")


def write_miniature(root: Path, *, seed: int = 9700) -> None:
    """The Flickr30k Entities layout (its test split has one image)."""
    from ...adapters.st_image import flickr_mini

    flickr_mini.write_entities(Path(root), seed=seed)
