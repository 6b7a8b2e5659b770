"""The released ST-Align-Dataset as a source, so that a build audits and re-shards the release.

Layout (``appletea2333/ST-Align-Dataset`` as LLaVA-ST's trainer reads it)::

    stage1.yaml stage2.yaml stage3.yaml   datasets: [{json_path, sampling_strategy, source, data_folder}]
    <json files>                          lists of ST records (id, video | image, meta.split,
                                          conversations, variables)
    <data_folder>/<video or image path>

The YAMLs name paths on the authors' machines: a ``json_path`` or ``data_folder`` that does not
exist is looked up under the release root by its name (the exact folder names of the release
are not published [U]). Each record is validated as released before its media are read — an
ST video under a ``shareVideoGPTV`` path (which the loader reads as 10 frames) is quarantined
and named — then gets its 100 frames over ``meta.split``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..formats import FormatError, from_record
from ..media.images import read_image_file
from ..media.video import STRangeSampler, frame_media, iter_frames, probe
from ..sample import Media, Sample
from ..synthetic import synthetic_image, write_video
from ..validate import check_sample
from .base import Adapter, MediaError, RawRecord


@dataclass
class Params:
    stages: list[str] = field(default_factory=lambda: ["stage1.yaml", "stage2.yaml", "stage3.yaml"])


class STRelease(Adapter):
    name = "st_release"
    family = "st"
    Params = Params
    description = "the released ST-Align-Dataset (stage YAMLs, JSON files, videos and images)"

    def _resolve(self, path: str) -> Path:
        p = Path(path)
        if not p.is_absolute():
            p = self.root / p
        if p.exists():
            return p
        matches = sorted(self.root.rglob(Path(path).name))
        if not matches:
            raise FileNotFoundError(f"st_release: {path} not found under {self.root}")
        return matches[0]

    def list_records(self):
        for stage_file in self.params.stages:
            if not (self.root / stage_file).is_file():
                continue
            stage = yaml.safe_load((self.root / stage_file).read_text()) or {}
            for entry in stage.get("datasets", []):
                json_path = self._resolve(entry["json_path"])
                folder = str(self._resolve(entry.get("data_folder", ".")))
                rel = str(json_path.relative_to(self.root))
                items = json.loads(json_path.read_text())
                for i, obj in enumerate(items):
                    sid = obj.get("id", i) if isinstance(obj, dict) else i
                    data = {"record": obj, "data_folder": folder, "stage": Path(stage_file).stem}
                    yield RawRecord(rel, f"index {i}", f"{Path(stage_file).stem}-{json_path.stem}-{sid}", data)

    def to_sample(self, record: RawRecord) -> Sample:
        try:
            sample = from_record(record.data["record"], "st", key=self.key_for(record))
        except FormatError as err:
            raise MediaError(str(err), reason="invalid_annotation") from err
        check_sample(sample)  # the release's own defects, before any media is read
        folder = Path(record.data["data_folder"])
        if isinstance(sample.record.get("video"), str):
            sample.media = self._frames(folder / sample.record["video"], (sample.record.get("meta") or {}).get("split"))
        else:
            images = sample.record.get("image")
            for slot, rel in enumerate(images if isinstance(images, list) else [images]):
                img = read_image_file(folder / rel, rel)
                sample.media.append(Media("image", slot, img.data, img.ext, size=list(img.size), ops=img.ops))
        return sample

    @staticmethod
    def _frames(path: Path, split) -> list[Media]:
        info = probe(path)
        start, end = split if split else (0, info.num_frames - 1)
        frames = iter_frames(path, STRangeSampler(int(start), int(end)).indices(info), info)
        return frame_media(frames, one_slot=True)


def _variables(**given) -> dict:
    return {n: given.get(n, []) for n in _RELEASED_ORDER}


_RELEASED_ORDER = [  # the six location lists, in the released key order
    "temporal_input_locations",
    "temporal_output_locations",
    "spatial_height_input_locations",
    "spatial_height_output_locations",
    "spatial_width_input_locations",
    "spatial_width_output_locations",
]


def write_miniature(root: Path, *, seed: int = 0) -> None:
    """A small release: a stage-3 YAML naming the authors' absolute paths, a TVG file, a REC
    file, and the planted defect: an ST video under a ``shareVideoGPTV`` path."""
    root = Path(root)
    data = root / "data"
    write_video(data / "videos" / "tvg_0.mp4", seed=seed, num_frames=120)
    write_video(data / "videos" / "tvg_1.mp4", seed=seed + 1, num_frames=90)
    (data / "shareVideoGPTV" / "frames" / "v_1").mkdir(parents=True, exist_ok=True)
    (data / "images").mkdir(parents=True, exist_ok=True)
    synthetic_image(seed + 5, (160, 120)).save(data / "images" / "coco_1.jpg")
    span = "{<TEMP-OUTPUT><TEMP-OUTPUT>}"
    tvg = [
        {"id": "tvg-0", "video": "videos/tvg_0.mp4", "meta": {"split": [10, 109]},
         "conversations": [{"from": "human", "value": "<video>\nWhen does the box cross the middle?"},
                           {"from": "gpt", "value": f"During the span of {span}."}],
         "variables": _variables(temporal_output_locations=[0.3, 0.6])},
        {"id": "tvg-1", "video": "videos/tvg_1.mp4", "meta": {"split": [0, 89]},
         "conversations": [{"from": "human", "value": "<video>\nWhen is the box at the left, after <TEMP-INPUT>?"},
                           {"from": "gpt", "value": f"Between {span}."}],
         "variables": _variables(temporal_input_locations=[0.1], temporal_output_locations=[0.1, 0.4])},
        {"id": "tvg-2", "video": "shareVideoGPTV/frames/v_1", "meta": {"split": [0, 9]},
         "conversations": [{"from": "human", "value": "<video>\nWhen does it start?"},
                           {"from": "gpt", "value": f"At {span}."}],
         "variables": _variables(temporal_output_locations=[0.0, 0.2])},
    ]  # fmt: skip
    box = "[<WIDTH-OUTPUT><HEIGHT-OUTPUT><WIDTH-OUTPUT><HEIGHT-OUTPUT>]"
    rec = [
        {"id": "rec-0", "image": "images/coco_1.jpg",
         "conversations": [{"from": "human", "value": "<image>\nWhere is the red shape?"},
                           {"from": "gpt", "value": f"It is at {box}."}],
         "variables": _variables(spatial_width_output_locations=[0.1, 0.5],
                                 spatial_height_output_locations=[0.2, 0.6])},
    ]  # fmt: skip
    (root / "stage3").mkdir(parents=True, exist_ok=True)
    (root / "stage3" / "tvg.json").write_text(json.dumps(tvg))
    (root / "stage3" / "rec.json").write_text(json.dumps(rec))
    (root / "stage3.yaml").write_text(
        "datasets:\n"
        "  - json_path: /mnt/authors/ST-Align/stage3/tvg.json\n    sampling_strategy: all\n"
        "    source: vtg-it\n    data_folder: /mnt/authors/ST-Align/data\n"
        "  - json_path: stage3/rec.json\n    sampling_strategy: all\n    source: refcoco\n    data_folder: data\n"
    )
