"""The released M4-Instruct-Data as a source, so that a build audits and re-shards the release.

Layout of ``lmms-lab/M4-Instruct-Data``::

    m4_instruct_annotations.json   one JSON list: multi-image, 3D and NExT-QA/STAR frame samples
    m4_instruct_video.json         LLaVA-Hound video samples: {"video": <path>, conversations}
    <dataset>.zip                  image archives; the folder inside is the first component of
                                   every image path, sometimes under one extra outer folder
    shareVideoGPTV/frames/all_frames/<id>/   LLaVA-Hound frame folders (not in the zips)

Each record is read exactly as released and validated *before* its media are loaded, so the
release's known defects (roles swapped as in ``twitter_post``, fewer ``<image>`` than images)
are quarantined as validation failures that name the sample; a missing image is
``missing_media``. Video samples get LLaVA-NeXT's 10 uniform frames of their folder.
Every path is confined to the release folder (an absolute or ``..`` image path is
``unsafe_path``). The split DreamSim archive (``dreamsim_split.z01`` + ``dreamsim_split.zip``) is
read in place like the other zips (``readers.splitzip``), no ``zip -s 0`` merge needed.

``datasets`` keeps only the records whose ``metadata.dataset`` it names (the sets a recipe takes
from the release because their text or media are not public): the others are not listed, so a
recipe's sampling draws from those sets alone. ``role_repair`` decides what happens to a sample
whose conversation starts with a gpt turn (``twitter_post``, LLaVA-NeXT issue #89): ``quarantine``
(the default) or ``swap`` for the datasets in ``swap_roles_in``. How the release swapped them is
not known [U], so the swap puts the images in the human turn either way: when the gpt turns hold
the images the labels are swapped (``roles_swapped:labels``), when the human turns do, each
(gpt, human) pair is put back in order (``roles_swapped:order``); the op is recorded in
provenance, and anything else stays quarantined.
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BuildError
from ..formats import from_record
from ..media.images import encode_jpeg
from ..media.sampling import UniformSampler
from ..readers import ArchiveSet, Part
from ..readers.splitzip import write_split_zip
from ..sample import Media, Provenance, Sample
from ..synthetic import synthetic_image
from ..validate import check_sample
from .base import Adapter, RawRecord, SourceError, SourceParams

log = logging.getLogger(__name__)


@dataclass
class Params(SourceParams):
    annotations: str = "m4_instruct_annotations.json"
    video_annotations: str = "m4_instruct_video.json"  # "" to skip the video part
    video_frames: int = 10  # LLaVA-NeXT's rule for LLaVA-Hound frame folders
    folder_fps: float = 1.0  # extraction rate of the frame folders: not published
    datasets: list[str] = field(default_factory=list)  # keep only these metadata.dataset values ([] = all)
    role_repair: str = "quarantine"  # quarantine | swap (a conversation that starts with gpt)
    swap_roles_in: list[str] = field(default_factory=lambda: ["twitter_post"])  # datasets role_repair swap applies to

    def __post_init__(self):
        if self.role_repair not in ("quarantine", "swap"):
            raise BuildError(f"m4_release: role_repair {self.role_repair!r} must be quarantine or swap")


class M4Release(Adapter):
    name = "m4_release"
    family = "m4"
    Params = Params
    description = "the released M4-Instruct-Data (annotation JSONs, image zips, LLaVA-Hound frames)"
    reader = "json"

    def annotation_files(self) -> list[str]:
        return [rel for rel in (self.params.annotations, self.params.video_annotations) if rel]

    def source_id(self, item) -> str:
        obj, stem = item.data, Path(item.file).stem
        index = item.locator.split()[-1]
        if not isinstance(obj, dict):
            return f"{stem}-{index}"
        meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
        sid = obj.get("sample_id", obj.get("id", index))
        return f"{meta.get('dataset') or stem}-{sid}"

    def records(self, part: Part) -> Iterator[RawRecord]:
        wanted = set(self.params.datasets)
        skipped = 0
        for record in super().records(part):
            if wanted and record.error is None and _dataset(record.data) not in wanted:
                skipped += 1
                continue
            yield record
        if skipped:
            log.info("%s: %d records of other datasets left out of %s", self.source_name, skipped, part.file)

    def to_sample(self, record: RawRecord) -> Sample:
        sample = from_record(
            record.data, "m4", key=self.key_for(record)
        )  # a malformed record is a FormatError: invalid_annotation
        if self.params.role_repair == "swap" and _dataset(record.data) in self.params.swap_roles_in:
            _swap_roles(sample)
        check_sample(sample, with_media=False)  # the release's own defects, before any media is read
        video = sample.record.get("video")
        if isinstance(video, str):
            info = self.video_info(video, folder_fps=self.params.folder_fps)
            indices = UniformSampler(self.params.video_frames).indices(info)
            sample.media = self.frames(video, indices, one_slot=True, folder_fps=self.params.folder_fps)
        else:
            images = sample.record.get("image") or []
            sample.media = [self._image(slot, rel) for slot, rel in enumerate(images)]
        return sample

    @classmethod
    def write_miniature(cls, root: Path, *, seed: int = 0) -> None:
        _write_release_miniature(Path(root), seed=seed)

    def _image(self, slot: int, rel) -> Media:
        if not isinstance(rel, str):
            raise SourceError(f"image path {rel!r} is not text")
        if self.src.is_file(rel):  # confined: an absolute or '..' path is refused here
            return self.image(rel, slot)
        archives = self.cached(("archives",), lambda: ArchiveSet(self.src, self.src.glob("*.zip")))
        return self.image_from_bytes(archives.read(rel, "image"), rel, slot)


def _dataset(obj) -> str | None:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    return meta.get("dataset") if isinstance(meta, dict) else None


def _swap_roles(sample: Sample) -> None:
    """Put a gpt-first conversation back as human-first, so that the images sit in human turns
    (see the module docstring); a conversation this cannot fix is left for the validator."""
    turns = sample.conversations
    roles = [t.role for t in turns]
    if not turns or len(turns) % 2 or roles != [("gpt", "human")[i % 2] for i in range(len(turns))]:
        return
    in_gpt = sum(t.value.count("<image>") for t in turns[0::2])
    in_human = sum(t.value.count("<image>") for t in turns[1::2])
    if in_gpt and not in_human:
        for t in turns:
            t.role = "human" if t.role == "gpt" else "gpt"
        op = "roles_swapped:labels"
    elif in_human and not in_gpt:
        sample.conversations = [t for i in range(0, len(turns), 2) for t in (turns[i + 1], turns[i])]
        op = "roles_swapped:order"
    else:
        return
    sample.provenance = Provenance("", "", "", ops=[op])


def _m4(sample_id, dataset, images, human, gpt, qtype="open-ended", roles=("human", "gpt")) -> dict:
    return {
        "sample_id": sample_id,
        "conversations": [{"from": roles[0], "value": human}, {"from": roles[1], "value": gpt}],
        "image": images,
        "choice_list": ["True", "False"] if qtype == "multi-choice" else None,
        "metadata": {"dataset": dataset, "split": "train", "num_sample": 2, "task_instruction": "",
                     "question_type": qtype},
    }  # fmt: skip


def _write_release_miniature(root: Path, *, seed: int = 0) -> None:
    """A small release with its known defects planted: roles swapped (``twitter_post``), 2
    placeholders for 4 images (MagicBrush-Diff sample 4756), and an image in no archive; and the
    sets only the release has (HQ-Edit-Diff, a multi-turn interleaved MMChat dialogue), and DreamSim
    in a split archive (``dreamsim_split.z01`` + ``.zip``) as the release ships it."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    archives = {
        "nlvr2.zip": ("", ["nlvr2/train/0/train-10-0-img0.png", "nlvr2/train/0/train-10-0-img1.png"]),
        "MagicBrush.zip": ("MagicBrush_release/", [f"MagicBrush/images/{i}.jpg" for i in range(10955, 10959)]),
        "twitter_post.zip": ("", ["twitter_post/images/1.jpg"]),
        "scannet_frames_25k.zip": ("", [f"scannet_frames_25k/scene0000_00/color/{i:06d}.jpg" for i in (0, 100)]),
        "HQ-Edit.zip": ("", [f"HQ-Edit/images/{i}.jpg" for i in range(4)]),
        "mmchat.zip": ("", [f"mmchat/images/{i}.jpg" for i in range(3)]),
    }
    for n, (zip_name, (outer, members)) in enumerate(archives.items()):
        with zipfile.ZipFile(root / zip_name, "w") as zf:
            for k, name in enumerate(members):
                zf.writestr(outer + name, encode_jpeg(synthetic_image(seed + 100 * n + k, (96, 64))))
    nl, mb = archives["nlvr2.zip"][1], archives["MagicBrush.zip"][1]
    hq, mm = archives["HQ-Edit.zip"][1], archives["mmchat.zip"][1]
    diff = "<image><image>\nWhat's the difference between 2 images"
    annotations = [
        _m4(0, "NLVR2", nl, "<image><image>\nBoth images show a shape. True or False?", "True", "multi-choice"),
        _m4(1, "NLVR2", nl, "<image><image>\nThe left image is red. True or False?", "False", "multi-choice"),
        _m4(4756, "MagicBrush", mb, "Source Image: <image>\nTarget Image: <image>\nWhat was edited?", "A hat."),
        _m4(4757, "MagicBrush", mb[:2], "Source Image: <image>\nTarget Image: <image>\nWhat changed?", "A hat."),
        _m4(3, "twitter_post", ["twitter_post/images/1.jpg"], "A tweet about shapes.", "<image>\nWrite a post.",
            roles=("gpt", "human")),
        _m4(7, "ScanQA", archives["scannet_frames_25k.zip"][1], "<image><image>\nWhat is on the floor?", "A box."),
        _m4(9, "Spot-the-Diff", ["Spot-the-Diff/images/42.png", "Spot-the-Diff/images/42_diff.png"],
            "<image><image>\nWhat differs?", "Nothing."),
        _m4(11, "HQ-Edit-Diff", hq[:2], f"{diff}?", "The second image shows the street covered in snow."),
        _m4(12, "HQ-Edit-Diff", hq[2:], f"{diff}?", "The car in the second image is blue instead of red."),
        _m4(20, "MMChat", mm[:2], "<image>\nLook at my new bike!", "It looks great. Is it fast?"),
        _m4(21, "MMChat", mm[2:], "<image>\nDinner tonight.", "That looks delicious."),
    ]  # fmt: skip
    mmchat = annotations[-2]
    mmchat["conversations"] += [{"from": "human", "value": "Very fast. Here it is at the lake: <image>"},
                                {"from": "gpt", "value": "What a nice view of the lake."}]  # fmt: skip
    dreamsim = [f"dreamsim/nights/{i:03d}_{k}.png" for i in range(1) for k in ("ref", "0", "1")]
    write_split_zip(root, "dreamsim_split", {name: encode_jpeg(synthetic_image(seed + 700 + j, (96, 64)))
                                             for j, name in enumerate(dreamsim)}, segment_size=4096)  # fmt: skip
    annotations.append(_m4(31, "DreamSim", dreamsim, "<image><image><image>\nWhich image is more similar to the first?",
                           "The second image.", "open-ended"))  # fmt: skip
    (root / "m4_instruct_annotations.json").write_text(json.dumps(annotations))
    videos = []
    for v in range(2):
        vid = f"v_{seed}{v}abc"
        folder = root / "shareVideoGPTV" / "frames" / "all_frames" / vid
        folder.mkdir(parents=True, exist_ok=True)
        for f in range(12):
            synthetic_image(seed + 1000 + 20 * v + f, (64, 48)).save(folder / f"c01_{f + 1:04d}.jpg")
        videos.append({"id": vid, "video": f"shareVideoGPTV/frames/all_frames/{vid}",
                       "conversations": [{"from": "human", "value": "<image>\nDescribe the video."},
                                         {"from": "gpt", "value": "Shapes move across the frame."}]})  # fmt: skip
    (root / "m4_instruct_video.json").write_text(json.dumps(videos))
