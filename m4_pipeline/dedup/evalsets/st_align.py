"""ST-Align benchmark (HF ``appletea2333/ST-Align-Benchmark``), as LLaVA-ST's evaluation reads it.

Layout (LLaVA-ST ``inference/config.yaml``: ``data/benchmarks/st-align/{stvg,svg,elc}.json``,
``data_folder: .../st-align/sources``)::

    stvg.json  svg.json  elc.json          JSON lists of items
    sources/<video_path>                   the videos (VidOR clips)

Item: ``{video_path, meta: {width, height, split: [start, end], time_token: {"<s>": frame,
"<e>": frame}, spatial_token: {"<bboxes>": {frame: [x, y, w, h]}}}, conversations}``; the human
turn holds ``<s>``/``<e>``/``<bboxes>`` template tokens (read from LLaVA-ST's
``inference/src/datasets.py``, ``VidSTGChatDataset``). LLaVA-ST scores the first 2000 items of
each file; every item is indexed here (``first_n`` narrows it), since a training sample over any
benchmark video is a leak. The shape of ``video_path`` values (folder depth) is not verified:
the video id is its file stem either way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from ...synthetic import write_video
from .base import BenchItem, BenchmarkLayoutError, human_turns, load_json_list

NAME = "st_align"
FILES = ("stvg.json", "svg.json", "elc.json")


def read(root: Path, *, first_n: int | None = None) -> Iterator[BenchItem]:
    root = Path(root)
    present = [f for f in FILES if (root / f).is_file()]
    if not present:
        raise BenchmarkLayoutError(f"{NAME}: none of {', '.join(FILES)} under {root}")
    for fname in present:
        items = load_json_list(root / fname)
        for pos, item in enumerate(items[:first_n] if first_n else items):
            where = f"{fname} index {pos}"
            if not isinstance(item, dict) or not isinstance(item.get("video_path"), str):
                raise BenchmarkLayoutError(f"{where}: expected an object with a 'video_path' string")
            rel = item["video_path"]
            yield BenchItem(
                benchmark=f"{NAME}/{fname.removesuffix('.json')}",
                item_id=f"index {pos}",
                questions=human_turns(item.get("conversations"), where),
                videos=[root / "sources" / rel],
                video_ids=[PurePosixPath(rel).stem.lower()],
            )


_PROMPTS = {
    "stvg.json": "<video>\nFind the {obj} that moves to the right. From <s> to <e>, where is it?",
    "svg.json": "<video>\nFrom <s> to <e>, track the {obj} that moves to the right.",
    "elc.json": "<video>\nThe {obj} starts to move at <s>. When does it end, and what happens?",
}
_OBJECTS = ("red box", "green box", "small yellow box")


def write_miniature(root: Path, *, items_per_file: int = 2, seed: int = 8000) -> None:
    """The three files over a few synthetic VidOR-like clips under ``sources/<folder>/<id>.mp4``."""
    root = Path(root)
    for f_index, (fname, prompt) in enumerate(_PROMPTS.items()):
        items = []
        for k in range(items_per_file):
            vid = f"{seed + f_index * 10 + k}"
            rel = f"{f_index:04d}/{vid}.mp4"
            write_video(root / "sources" / rel, seed=seed + f_index * 10 + k, num_frames=24, size=(160, 96))
            obj = _OBJECTS[(f_index + k) % len(_OBJECTS)]
            items.append({
                "video_path": rel,
                "meta": {"width": 160, "height": 96, "split": [0, 23], "time_token": {"<s>": 2, "<e>": 20},
                         "spatial_token": {"<bboxes>": {str(f): [f * 5, 32, 24, 24] for f in range(2, 21, 6)}}},
                "conversations": [
                    {"from": "human", "value": prompt.format(obj=obj)},
                    {"from": "gpt", "value": "Ends in <e>, it stops. Object bounding box: <bboxes>"},
                ],
            })  # fmt: skip
        (root / fname).write_text(json.dumps(items, indent=1))
