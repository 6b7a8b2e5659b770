"""NLVR2 (multi-image): JSON-lines annotations and image pairs, as published by lil-lab/nlvr.

Layout (``nlvr2/`` of github.com/lil-lab/nlvr, images as distributed)::

    data/train.json  data/dev.json  data/test1.json      one JSON object per line
    images/train/<directory>/train-<set>-<pair>-img0.png  train images, 100 numbered folders
    dev/dev-<set>-<pair>-img{0,1}.png                     dev / test images, one folder per split

Each line: identifier ("dev-850-0-0"), sentence, label ("True"/"False"), left_url, right_url,
synset, query, writer, validation, extra_validations; train lines also carry ``directory``.
Images are named from the identifier without its last component; ``.png`` even for JPEG content.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from ..formats import m4_record
from ..media.images import encode_jpeg, read_image_file
from ..media.patches import PadToSquare
from ..sample import Media, Sample, Turn
from ..synthetic import synthetic_image
from .base import Adapter, RawRecord, SourceError, require_fields


@dataclass
class Params:
    splits: list[str] = field(default_factory=lambda: ["train"])
    image_prefix: str = "nlvr2"  # first component of the released image paths (the zip's folder)
    dataset_name: str = "NLVR2"
    prompt: str = "<image>\n<image>\n{sentence}\nIs this statement true or false about the two images?"
    task_instruction: str = ""
    pad_to_square: bool = False  # LLaVA's "pad" preprocessing, done here instead of in the trainer


def image_paths(identifier: str, split: str, directory) -> list[str]:
    """The two image paths of a line, relative to the source root."""
    stem = identifier.rsplit("-", 1)[0]
    folder = f"images/train/{directory}" if split == "train" else split
    return [f"{folder}/{stem}-img0.png", f"{folder}/{stem}-img1.png"]


class NLVR2(Adapter):
    name = "nlvr2"
    family = "m4"
    Params = Params
    description = "NLVR2 image-pair statements (multi-image, lil-lab/nlvr layout)"

    def list_records(self):
        for split in self.params.splits:
            rel = f"data/{split}.json"
            for lineno, obj, error in self.iter_json_lines(rel):
                ident = obj.get("identifier") if isinstance(obj, dict) else None
                yield RawRecord(rel, f"line {lineno}", str(ident or f"{split}-line{lineno}"), obj, error)

    def to_sample(self, record: RawRecord) -> Sample:
        p = self.params
        obj = record.data
        require_fields(obj, ("identifier", "sentence", "label"), record.locator)
        split = obj["identifier"].split("-", 1)[0]
        if split == "train" and "directory" not in obj:
            raise SourceError("invalid_annotation", f"{record.locator}: train line without 'directory'")
        if obj["label"] not in ("True", "False"):
            raise SourceError("invalid_annotation", f"{record.locator}: label {obj['label']!r} is not 'True'/'False'")
        media, paths = [], []
        for slot, rel in enumerate(image_paths(obj["identifier"], split, obj.get("directory"))):
            img = read_image_file(self.root / rel, rel)
            if p.pad_to_square:
                square = PadToSquare().apply(img.image)
                img.data, img.size, img.ops = encode_jpeg(square), square.size, [*img.ops, "pad_to_square"]
            media.append(Media("image", slot, img.data, img.ext, size=list(img.size), ops=img.ops))
            paths.append(f"{p.image_prefix}/{rel}")
        return Sample(
            key="",
            family="m4",
            conversations=[
                Turn("human", p.prompt.format(sentence=obj["sentence"])),
                Turn("gpt", obj["label"]),
            ],
            record=m4_record(
                record.source_id,
                paths,
                dataset=p.dataset_name,
                question_type="multi-choice",
                task_instruction=p.task_instruction,
                choice_list=["True", "False"],
            ),
            media=media,
        )


SENTENCES = [
    "The left image contains exactly two round shapes.",
    "There is a red shape in the right image.",
    "Both images show at least one rectangle.",
    "The right image has more shapes than the left image.",
]


def write_miniature(root: Path, *, pairs_per_split: int = 3, seed: int = 0) -> None:
    """A small NLVR2 in its published layout: train (with directories) and dev."""
    root = Path(root)
    (root / "data").mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev"):
        lines = []
        for pair in range(pairs_per_split):
            set_id = 100 + pair
            directory = pair % 3 if split == "train" else None
            for img in (0, 1):
                rel = image_paths(f"{split}-{set_id}-0-0", split, directory)[img]
                path = root / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                synthetic_image(seed * 1000 + set_id * 2 + img + (500 if split == "dev" else 0)).save(path, "PNG")
            for sent in range(2):  # several sentences share one image pair
                line = {
                    "validation": {"61": "True"},
                    "sentence": SENTENCES[(pair + sent) % len(SENTENCES)],
                    "left_url": f"https://example.org/{split}/{set_id}/left.jpg",
                    "writer": "61",
                    "label": "True" if (pair + sent) % 2 == 0 else "False",
                    "right_url": f"https://example.org/{split}/{set_id}/right.jpg",
                    "synset": "shape",
                    "query": f"shapes{set_id}",
                    "identifier": f"{split}-{set_id}-0-{sent}",
                    "extra_validations": {"154": "True"} if split != "train" else {},
                }
                if split == "train":
                    line["directory"] = directory
                lines.append(json.dumps(line))
        (root / "data" / f"{split}.json").write_text("\n".join(lines) + "\n")
