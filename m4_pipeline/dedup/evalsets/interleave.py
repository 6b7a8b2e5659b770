"""LLaVA-Interleave Bench (HF ``lmms-lab/llava-interleave-bench``), as published.

Layout (LLaVA-NeXT ``docs/LLaVA-NeXT-Interleave.md``: unzip ``eval_images.zip``, which holds
``Split1/`` and ``Split2/``)::

    multi_image_in_domain.json  multi_image_out_domain.json  multi_view_in_domain.json
    [MMMU_mv.json]                                       optional, read when present
    eval_images/Split1/...  eval_images/Split2/...       or Split1/ Split2/ directly under root

Each file is a JSON list of records in the M4-Instruct schema (``sample_id``, ``conversations``,
``image`` list, ``choice_list``, ``metadata``). NOT VERIFIED against the real files: whether the
``image`` values start with ``Split1/`` or with ``eval_images/Split1/`` (both resolve here:
each path is tried under the root, then under ``eval_images/``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from ...synthetic import synthetic_image
from .base import BenchItem, BenchmarkLayoutError, first_existing, human_turns, load_json_list

NAME = "llava_interleave"
FILES = ("multi_image_in_domain.json", "multi_image_out_domain.json", "multi_view_in_domain.json")
OPTIONAL_FILES = ("MMMU_mv.json",)


def _image_path(root: Path, rel: str) -> Path:
    rel = rel.removeprefix("./")
    return first_existing([root / rel, root / "eval_images" / rel, root / rel.removeprefix("eval_images/")])


def read(root: Path) -> Iterator[BenchItem]:
    root = Path(root)
    present = [f for f in FILES if (root / f).is_file()] + [f for f in OPTIONAL_FILES if (root / f).is_file()]
    if not present:
        raise BenchmarkLayoutError(f"{NAME}: none of {', '.join(FILES)} under {root}")
    for fname in present:
        bench = f"{NAME}/{fname.removesuffix('.json')}"
        for pos, rec in enumerate(load_json_list(root / fname)):
            where = f"{fname} index {pos}"
            if not isinstance(rec, dict):
                raise BenchmarkLayoutError(f"{where}: expected an object")
            images = rec.get("image") or []
            if isinstance(images, str):
                images = [images]
            yield BenchItem(
                benchmark=bench,
                item_id=str(rec.get("sample_id", f"index {pos}")),
                questions=human_turns(rec.get("conversations"), where),
                images=[_image_path(root, p) for p in images],
            )


_MINI = {
    "multi_image_in_domain.json": ("Split1", "Spot-the-Diff", 2, "What is the difference between the two images?"),
    "multi_image_out_domain.json": ("Split2", "Mantis-Eval", 2, "Which of the two pictures shows more red shapes?"),
    "multi_view_in_domain.json": ("Split1", "ScanQA", 4, "Where is the tall box placed in the room?"),
}


def write_miniature(root: Path, *, items_per_file: int = 3, seed: int = 7000) -> None:
    """Three benchmark files of a few items each; images under ``eval_images/Split{1,2}/``."""
    root = Path(root)
    for f_index, (fname, (split, dataset, n_images, question)) in enumerate(_MINI.items()):
        records = []
        for item in range(items_per_file):
            paths = []
            for k in range(n_images):
                rel = f"{split}/{dataset}/{item:04d}_{k}.jpg"
                path = root / "eval_images" / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                synthetic_image(seed + f_index * 100 + item * 10 + k, (256, 192)).save(path, "JPEG", quality=92)
                paths.append(rel)
            records.append({
                "sample_id": f_index * 1000 + item,
                "conversations": [
                    {"from": "human", "value": "<image>" * n_images + f"\n{question} Item {item}."},
                    {"from": "gpt", "value": f"answer {item}"},
                ],
                "image": paths,
                "choice_list": None,
                "metadata": {"dataset": dataset, "split": "test", "num_sample": items_per_file,
                             "task_instruction": "", "question_type": "open-ended"},
            })  # fmt: skip
        (root / fname).write_text(json.dumps(records, indent=1))
