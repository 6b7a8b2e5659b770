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
from pathlib import Path, PurePosixPath

import yaml

from ..formats import from_record
from ..media.sampling import STRangeSampler
from ..paths import AnnotationFileError
from ..readers import get_reader
from ..sample import Sample
from ..synthetic import synthetic_image, write_video
from ..validate import check_sample
from .base import Adapter, RawRecord, SourceError, SourceParams


@dataclass
class Params(SourceParams):
    stages: list[str] = field(default_factory=list)  # the stage YAMLs to read; [] = every stage*.yaml at the root


class STRelease(Adapter):
    name = "st_release"
    family = "st"
    Params = Params
    description = "the released ST-Align-Dataset (stage YAMLs, JSON files, videos and images)"

    def _resolve(self, path: str, what: str) -> str:
        """A YAML path as a path under the release root: used as it is when it is relative and
        exists there, else looked up by its last component (the YAMLs name the authors' paths)."""
        if not isinstance(path, str) or not path:
            raise AnnotationFileError(what, f"expected a path, got {path!r}")
        if not path.startswith("/") and ".." not in PurePosixPath(path).parts and self.src.exists(path):
            return path
        name = PurePosixPath(path).name
        matches = [m for m in self.src.glob(f"**/{name}")] or [d for d in self._dirs() if PurePosixPath(d).name == name]
        if not matches:
            raise AnnotationFileError(what, f"{path} not found under {self.root} (looked up by its name {name!r})")
        return sorted(matches, key=lambda m: (m.count("/"), m))[0]

    def _dirs(self) -> list[str]:
        return self.cached(("dirs",), lambda: [str(p.relative_to(self.root)) for p in self.root.rglob("*")
                                               if p.is_dir() and not p.is_symlink()])  # fmt: skip

    def stage_files(self) -> list[str]:
        """The stage YAMLs: the ones the recipe names (each must exist), else every ``stage*.yaml``."""
        if not self.params.stages:
            found = self.src.glob("stage*.yaml")
            if not found:
                raise AnnotationFileError("stage*.yaml", f"no stage YAML at the root of {self.root}")
            return found
        for stage_file in self.params.stages:
            self.src.annotation(stage_file)  # a missing or unsafe one stops the build, named
        return list(self.params.stages)

    def preflight(self) -> None:
        self.stage_files()

    def list_records(self):
        for stage_file in self.stage_files():
            try:
                stage = yaml.safe_load(self.src.annotation(stage_file).read_text()) or {}
            except yaml.YAMLError as err:
                raise AnnotationFileError(stage_file, f"not valid YAML: {err}") from None
            stage_name = Path(stage_file).stem
            for entry in stage.get("datasets", []) if isinstance(stage, dict) else []:
                if not isinstance(entry, dict):
                    raise AnnotationFileError(stage_file, f"a datasets entry must be a mapping, got {entry!r}")
                rel = self._resolve(entry.get("json_path"), stage_file)
                folder = self._resolve(entry.get("data_folder", "."), stage_file) if entry.get("data_folder") else "."
                for item in get_reader("json").read_file(self.src, rel):
                    obj = item.data
                    sid = obj.get("id", item.locator.split()[-1]) if isinstance(obj, dict) else item.locator.split()[-1]
                    data = {"record": obj, "data_folder": folder, "stage": stage_name}
                    yield RawRecord(rel, item.locator, f"{stage_name}-{Path(rel).stem}-{sid}", data)

    def to_sample(self, record: RawRecord) -> Sample:
        sample = from_record(
            record.data["record"], "st", key=self.key_for(record)
        )  # a malformed record is a FormatError: invalid_annotation
        check_sample(sample, with_media=False)  # the release's own defects, before any media is read
        folder = record.data["data_folder"]
        video = sample.record.get("video")
        if isinstance(video, str):
            rel = f"{folder}/{video}"
            info = self.video_info(rel)
            split = (sample.record.get("meta") or {}).get("split")
            start, end = split if split else (0, info.num_frames - 1)
            sample.media = self.frames(rel, STRangeSampler(int(start), int(end)).indices(info), one_slot=True)
        else:
            images = sample.record.get("image")
            for slot, image in enumerate(images if isinstance(images, list) else [images]):
                if not isinstance(image, str):
                    raise SourceError(f"image path {image!r} is not text")
                sample.media.append(self.image(f"{folder}/{image}", slot))
        return sample

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        _write_release_miniature(Path(root), seed=seed)


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


def _write_release_miniature(root: Path, *, seed: int = 0) -> None:
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
