"""Charades-STA test split (github.com/jiyanggao/TALL), as published.

Layout::

    charades_sta_test.txt        one query per line: "<video id> <start s> <end s>##<sentence>"
    Charades_v1_480/<id>.mp4     the Charades videos (480p release)

also read: LLaVA-ST's converted ``test.json`` (a JSON list of ``{image_id, caption, timestamp}``
with videos under ``sources/``; its ``image_id`` may carry a ``v_`` prefix and a file extension),
inferred from LLaVA-ST ``inference/src/datasets.py`` (``CharadesSTGDataset``), not verified on
the real file. Training samples over a test video are found by video id and by the video's
frames; the sentence is the question.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from ...synthetic import write_video
from .base import BenchItem, BenchmarkLayoutError, load_json_list

NAME = "charades_sta"
TXT = "charades_sta_test.txt"
LLAVA_ST_JSON = "test.json"
VIDEO_DIR = "Charades_v1_480"


def _parse_line(line: str, where: str) -> tuple[str, str]:
    head, sep, sentence = line.partition("##")
    parts = head.split()
    if not sep or len(parts) != 3:
        raise BenchmarkLayoutError(f"{where}: expected '<vid> <start> <end>##<sentence>', got {line!r}")
    try:
        float(parts[1]), float(parts[2])
    except ValueError as err:
        raise BenchmarkLayoutError(f"{where}: start/end are not numbers in {line!r}") from err
    return parts[0], sentence.strip()


def read(root: Path) -> Iterator[BenchItem]:
    root = Path(root)
    if (root / TXT).is_file():
        with open(root / TXT, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                vid, sentence = _parse_line(line.rstrip("\n"), f"{TXT} line {lineno}")
                yield BenchItem(
                    benchmark=f"{NAME}/test",
                    item_id=f"line {lineno}",
                    questions=[sentence],
                    videos=[root / VIDEO_DIR / f"{vid}.mp4"],
                    video_ids=[vid.lower()],
                )
    elif (root / LLAVA_ST_JSON).is_file():
        for pos, item in enumerate(load_json_list(root / LLAVA_ST_JSON)):
            if not isinstance(item, dict) or not isinstance(item.get("image_id"), str):
                raise BenchmarkLayoutError(f"{LLAVA_ST_JSON} index {pos}: expected an object with 'image_id'")
            name = item["image_id"].removeprefix("v_")
            path = root / "sources" / name
            yield BenchItem(
                benchmark=f"{NAME}/test",
                item_id=f"index {pos}",
                questions=[str(item.get("caption", ""))],
                videos=[path if path.suffix else path.with_suffix(".mp4")],
                video_ids=[PurePosixPath(name).stem.lower()],
            )
    else:
        raise BenchmarkLayoutError(f"{NAME}: neither {TXT} nor {LLAVA_ST_JSON} under {root}")


_SENTENCES = (
    "person opens the door.",
    "a person is sitting on a chair eating a sandwich.",
    "person turns on the light.",
)


def write_miniature(root: Path, *, videos: int = 3, seed: int = 9000) -> None:
    """``charades_sta_test.txt`` with two queries per video, and the videos under ``Charades_v1_480/``."""
    root = Path(root)
    lines = []
    for k in range(videos):
        vid = f"{'ABCDEFGH'[k]}{seed + k:04d}"[:5].upper()
        write_video(root / VIDEO_DIR / f"{vid}.mp4", seed=seed + k, num_frames=30, size=(160, 96))
        for q in range(2):
            sentence = _SENTENCES[(k + q) % len(_SENTENCES)]
            lines.append(f"{vid} {1.2 + q:.1f} {4.5 + q:.1f}##{sentence}")
    (root / TXT).write_text("\n".join(lines) + "\n")
