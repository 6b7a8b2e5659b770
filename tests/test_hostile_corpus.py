"""The bad-input corpus of issue #10, built by code: every source's miniature plus records that
are hostile (paths leaving the source root, symlinks out of it) or broken (wrong types, empty
text, lone surrogates, out-of-range frames, NaN boxes, a mesh without faces, blank renders,
placeholders in the wrong turn), each with the quarantine reason it must get.

Bad records are *appended* to their files (or live in files of their own), so the locators of
the miniature's own records do not move: the build of the corpus must quarantine exactly the
miniature's own defects plus every planted case, each with its reason. Files outside the source
root (``outside/``) hold a marker colour and a marker text that must never reach a shard or an
export. The tests that build it are in ``test_hostile_build.py``; here: the corpus, checked
record by record through each adapter without Ray.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from m4_pipeline.adapters import get_adapter, write_miniature
from m4_pipeline.dedup import get_exact_key
from m4_pipeline.media.video import ffmpeg_binary
from m4_pipeline.process import process_record

MARKER_RGB = (13, 250, 7)  # the colour of every media file outside the source root
MARKER_TEXT = "OUTSIDE-MARKER-7f3a"  # the text of every annotation-like file outside it
SOURCES = ["nlvr2", "nextqa", "scanqa", "llava_mix", "vidstg", "m4_release", "st_release"]


@dataclass(frozen=True)
class Case:
    source: str  # the recipe's source name
    source_file: str
    locator: str
    reason: str  # the quarantine reason it must get ("written": it must be written)
    what: str  # the words for it


def recipe_text(name: str = "hostile", fraction: float = 1.0) -> str:
    """Every source, plus a llava_mix copy whose inside symlinks are allowed (``symlinks: inside``)."""
    blocks = [
        "  - {name: nlvr2, adapter: nlvr2, path: nlvr2, params: {splits: [train, dev]}}",
        "  - {name: nextqa, adapter: nextqa, path: nextqa, params: {splits: [train, val], frames: 4}}",
        "  - {name: scanqa, adapter: scanqa, path: scanqa, params: {splits: [train], views: 2, render_size: [96, 72]}}",
        "  - {name: llava_mix, adapter: llava_mix, path: llava_mix}",
        "  - {name: vidstg, adapter: vidstg, path: vidstg, params: {split: train}}",
        "  - {name: m4_release, adapter: m4_release, path: m4_release}",
        "  - {name: st_release, adapter: st_release, path: st_release, params: {stages: [stage3.yaml]}}",
        "  - {name: llava_links, adapter: llava_mix, path: llava_links, symlinks: inside}",
    ]
    blocks = [b[:-1] + f", max_quarantine_fraction: {fraction}}}" for b in blocks]
    return (
        f"name: {name}\nversion: '1'\noutput: {{shard_max_samples: 8, records_per_unit: 3}}\n"
        "dedup: {exact: true}\nsources:\n" + "\n".join(blocks) + "\n"
    )


# --- writing the corpus ---------------------------------------------------------------------------


def write_outside(outside: Path) -> None:
    """The files an attacker points at: outside every source root."""
    outside.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 48), MARKER_RGB).save(outside / "marker.jpg", quality=95)
    (outside / "frames").mkdir(exist_ok=True)
    for i in range(12):
        Image.new("RGB", (64, 48), MARKER_RGB).save(outside / "frames" / f"c01_{i + 1:04d}.jpg", quality=95)
    colour = "0x{:02X}{:02X}{:02X}".format(*MARKER_RGB)
    cmd = [ffmpeg_binary(), "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"color=c={colour}:s=160x96:r=30:d=5",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", str(outside / "marker.mp4")]  # fmt: skip
    subprocess.run(cmd, check=True)
    (outside / "marker.txt").write_text(MARKER_TEXT)
    (outside / "map.json").write_text(json.dumps({"x": MARKER_TEXT}))


def write_hostile_corpus(root: Path, *, plant: bool = True) -> list[Case]:
    """``root/sources/<source>`` (every miniature) and ``root/outside``; with ``plant`` the bad
    records are added. Returns the planted cases."""
    sources, outside = root / "sources", root / "outside"
    for name in SOURCES:
        write_miniature(name, sources / name)
    shutil.copytree(sources / "llava_mix", sources / "llava_links")
    write_outside(outside)
    if not plant:
        return []
    cases: list[Case] = []
    for plant_source in (_nlvr2, _nextqa, _llava_mix, _llava_links, _vidstg, _scanqa, _m4_release, _st_release):
        cases += plant_source(sources, outside)
    return cases


def _append_json(path: Path, items: list) -> list[str]:
    data = json.loads(path.read_text())
    first = len(data)
    path.write_text(json.dumps(data + items))
    return [f"index {first + i}" for i in range(len(items))]


def _append_lines(path: Path, lines: list[str]) -> list[str]:
    old = path.read_text().splitlines()
    path.write_text("\n".join(old + lines) + "\n")
    return [f"line {len(old) + 1 + i}" for i in range(len(lines))]


def _nlvr2(sources: Path, outside: Path) -> list[Case]:
    ann = sources / "nlvr2" / "data" / "train.json"
    base = json.loads(ann.read_text().splitlines()[0])
    bad = [
        ({**base, "identifier": "train-100-0-7", "directory": "../../../../outside"}, "unsafe_path",
         "a directory field with ../"),
        ({**base, "identifier": "train-100-0-8", "sentence": ""}, "empty_text", "an empty sentence"),
        ({**base, "identifier": 1000}, "invalid_annotation", "an int identifier"),
        ({**base, "identifier": "train-100-0-9", "sentence": "left \ud800 image"}, "invalid_annotation",
         "a lone surrogate in a text"),
        ({**base, "identifier": "train-100-0-\udc01"}, "invalid_annotation", "a lone surrogate in an id"),
        ({**base, "identifier": "train-100-0-10", "label": "Maybe"}, "invalid_annotation", "an answer not a choice"),
    ]  # fmt: skip
    locs = _append_lines(ann, [json.dumps(rec) for rec, _, _ in bad])
    return [Case("nlvr2", "data/train.json", loc, reason, what) for loc, (_, reason, what) in zip(locs, bad)]


def _nextqa(sources: Path, outside: Path) -> list[Case]:
    root = sources / "nextqa"
    maps = root / "dataset" / "nextqa" / "map_vid_vidorID.json"
    mapping = json.loads(maps.read_text())
    mapping["4010069999"] = "../../outside/marker"  # NExTVideo/../../outside/marker.mp4
    maps.write_text(json.dumps(mapping))
    csv = root / "dataset" / "nextqa" / "train.csv"
    lines = csv.read_text().splitlines()
    header = lines[0].split(",")
    good = dict(zip(header, lines[1].split(",")))
    bad = [
        ({**good, "video": "4010069999"}, "unsafe_path", "a NExT-QA map entry with ../"),
        ({**good, "question": ""}, "empty_text", "an empty question"),
        ({**good, "a2": ""}, "empty_text", "an empty option"),
        ({**good, "answer": "7"}, "invalid_annotation", "an answer index out of range"),
        ({**good, "video": "4010060000"}, "missing_media", "a video missing from the map"),
    ]  # fmt: skip
    first = len(lines) + 1  # rows are numbered from 1, the header is row 1
    csv.write_text("\n".join(lines + [",".join(rec[h] for h in header) for rec, _, _ in bad]) + "\n")
    return [Case("nextqa", "dataset/nextqa/train.csv", f"row {first + i}", reason, what)
            for i, (_, reason, what) in enumerate(bad)]  # fmt: skip


def _mix_entry(image, human="<image>\nWhat is shown?", gpt="Shapes.", sid="bad"):
    entry = {"id": sid, "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": gpt}]}
    if image is not None:
        entry["image"] = image
    return entry


def _llava_mix(sources: Path, outside: Path) -> list[Case]:
    root = sources / "llava_mix"
    (root / "coco" / "link_out.jpg").symlink_to(outside / "marker.jpg")
    (root / "linked_dir").symlink_to(outside, target_is_directory=True)
    ok = "coco/train2017/000000033471.jpg"
    bad = [
        (_mix_entry(str(outside / "marker.jpg"), sid="abs"), "unsafe_path", "an absolute image path"),
        (_mix_entry("../../outside/marker.jpg", sid="dotdot"), "unsafe_path", "a ../ image path"),
        (_mix_entry("coco/link_out.jpg", sid="filelink"), "unsafe_path", "a symlinked file pointing outside"),
        (_mix_entry("linked_dir/marker.jpg", sid="dirlink"), "unsafe_path", "a symlinked folder pointing outside"),
        (_mix_entry(ok, human="<image>\nWhat is \ud800 this?", sid="surrogate"), "invalid_annotation",
         "a lone surrogate in a text"),
        (_mix_entry(ok, sid="id-\ud83d"), "invalid_annotation", "a lone surrogate in an id"),
        (_mix_entry([ok], sid="listpath"), "invalid_annotation", "a list as an image path"),
        (_mix_entry(ok, human="What is shown?", gpt="<image> Shapes.", sid="gptimage"), "validation",
         "an <image> only in a gpt turn"),
        (_mix_entry(ok, human="", sid="emptyturn"), "empty_text", "an empty turn"),
        (_mix_entry(ok, human=5, sid="intturn"), "invalid_annotation", "an int as a turn's text"),
    ]  # fmt: skip
    locs = _append_json(root / "llava_v1_5_mix665k.json", [e for e, _, _ in bad])
    return [Case("llava_mix", "llava_v1_5_mix665k.json", loc, reason, what)
            for loc, (_, reason, what) in zip(locs, bad)]  # fmt: skip


def _llava_links(sources: Path, outside: Path) -> list[Case]:
    """``symlinks: inside``: a link that stays inside the root is followed; one out still refused."""
    root = sources / "llava_links"
    (root / "coco" / "inside_link.jpg").symlink_to(root / "coco" / "train2017" / "000000033471.jpg")
    (root / "coco" / "outside_link.jpg").symlink_to(outside / "marker.jpg")
    bad = [
        (_mix_entry("coco/inside_link.jpg", human="<image>\nA linked image?", sid="inlink"), "written",
         "a symlink inside the root, allowed by the recipe"),
        (_mix_entry("coco/outside_link.jpg", sid="outlink"), "unsafe_path", "a symlink leaving the root"),
    ]  # fmt: skip
    locs = _append_json(root / "llava_v1_5_mix665k.json", [e for e, _, _ in bad])
    return [Case("llava_links", "llava_v1_5_mix665k.json", loc, reason, what)
            for loc, (_, reason, what) in zip(locs, bad)]  # fmt: skip


def _vidstg(sources: Path, outside: Path) -> list[Case]:
    root = sources / "vidstg"
    ann = root / "annotations" / "train_annotations.json"
    entries = json.loads(ann.read_text())
    base = entries[0]
    vid0 = base["vid"]
    vidor0 = json.loads((root / "vidor" / "annotation" / "training" / "0000" / f"{vid0}.json").read_text())

    def new_video(vid: str, **vidor_changes) -> None:
        """A new VidOR video (a copy of the first) with its annotation changed."""
        (root / "vidor" / "video" / "0000" / f"{vid}.mp4").write_bytes(
            (root / "vidor" / "video" / "0000" / f"{vid0}.mp4").read_bytes()
        )
        vidor = {**vidor0, "video_id": vid, "video_path": f"0000/{vid}.mp4", **vidor_changes}
        (root / "vidor" / "annotation" / "training" / "0000" / f"{vid}.json").write_text(json.dumps(vidor))

    def with_box(value):
        return [[{**b, "bbox": {**b["bbox"], "xmin": value}} if b["tid"] == 0 else b for b in frame]
                for frame in vidor0["trajectories"]]  # fmt: skip

    new_video("2401079001", video_path="../../../../outside/marker.mp4")
    new_video("2401079002", trajectories=with_box(float("nan")))
    new_video("2401079003", trajectories=with_box(float("inf")))
    new_video("2401079004", width="wide")
    new_video("2401079005")
    (root / "vidor" / "video" / "0000" / "2401079005.mp4").unlink()
    (root / "vidor" / "video" / "0000" / "2401079005.mp4").symlink_to(outside / "marker.mp4")
    caption = base["captions"][:1]
    one = {"questions": [], "captions": caption}
    bad = [
        ({**base, **one, "used_segment": {"begin_fid": -50, "end_fid": 150}}, "invalid_annotation",
         "a begin_fid of -50"),
        ({**base, **one, "used_segment": {"begin_fid": 5, "end_fid": 10000}}, "invalid_annotation",
         "an end_fid of 10000"),
        ({**base, **one, "temporal_gt": {"begin_fid": float("nan"), "end_fid": 60}}, "invalid_annotation",
         "a NaN frame id"),
        ({**base, **one, "vid": "2401079001"}, "unsafe_path", "a VidOR video_path with ../"),
        ({**base, **one, "vid": "2401079002"}, "invalid_annotation", "NaN box coordinates"),
        ({**base, **one, "vid": "2401079003"}, "invalid_annotation", "inf box coordinates"),
        ({**base, **one, "vid": "2401079004"}, "invalid_annotation", "a string width"),
        ({**base, **one, "vid": "2401079005"}, "unsafe_path", "a video symlinked outside the root"),
        ({**base, "questions": [], "captions": [{**caption[0], "description": "  "}]}, "empty_text",
         "an empty sentence"),
        ({**base, "questions": [], "captions": [{**caption[0], "description": "a \udc00 box"}]},
         "invalid_annotation", "a lone surrogate in a sentence"),
        ({**base, **one, "frame_count": "many"}, "invalid_annotation", "a string frame_count"),
    ]  # fmt: skip
    locs = _append_json(ann, [e for e, _, _ in bad])
    return [Case("vidstg", "annotations/train_annotations.json", f"{loc} captions[0]", reason, what)
            for loc, (_, reason, what) in zip(locs, bad)]  # fmt: skip


def _scanqa(sources: Path, outside: Path) -> list[Case]:
    import open3d as o3d

    root = sources / "scanqa"
    scans = root / "scans"

    def copy_scene(new: str) -> Path:
        old = "scene0000_00"
        shutil.copytree(scans / old, scans / new)
        for suffix in ("_vh_clean_2.ply", ".txt"):
            (scans / new / f"{old}{suffix}").rename(scans / new / f"{new}{suffix}")
        return scans / new

    truncated = copy_scene("scene0090_00")  # a PLY whose faces were lost: vertices only
    mesh = o3d.io.read_triangle_mesh(str(truncated / "scene0090_00_vh_clean_2.ply"))
    points = o3d.geometry.TriangleMesh()
    points.vertices, points.vertex_colors = mesh.vertices, mesh.vertex_colors
    o3d.io.write_triangle_mesh(str(truncated / "scene0090_00_vh_clean_2.ply"), points)
    away = copy_scene("scene0091_00")  # every recorded camera far away, looking away: blank renders
    pose = np.eye(4)
    pose[:3, 3] = [500.0, 500.0, 500.0]
    for p in (away / "pose").glob("*.txt"):
        np.savetxt(p, pose, fmt="%f")
    good = {"answers": ["a box"], "object_ids": [1], "object_names": ["box"], "question": "What is in the corner?"}
    bad = [
        ({**good, "question_id": "bad-0", "scene_id": "scene0090_00"}, "bad_media", "a PLY with 0 triangles"),
        ({**good, "question_id": "bad-1", "scene_id": "scene0091_00"}, "bad_media", "renders whose views are blank"),
        ({**good, "question_id": "bad-2", "scene_id": "scene0000_00", "question": ""}, "empty_text",
         "an empty question"),
        ({**good, "question_id": "bad-3", "scene_id": "../../outside"}, "unsafe_path", "a ../ scene id"),
        ({**good, "question_id": "bad-4", "scene_id": ["scene0000_00"]}, "invalid_annotation", "a list scene_id"),
        ({**good, "question_id": "bad-5", "scene_id": "scene0000_00", "answers": [7]}, "invalid_annotation",
         "an int answer"),
    ]  # fmt: skip
    locs = _append_json(root / "qa" / "ScanQA_v1.0_train.json", [e for e, _, _ in bad])
    return [Case("scanqa", "qa/ScanQA_v1.0_train.json", loc, reason, what)
            for loc, (_, reason, what) in zip(locs, bad)]  # fmt: skip


def _m4_record(sid, images, human="<image>\nWhat is shown?"):
    return {"sample_id": sid, "conversations": [{"from": "human", "value": human}, {"from": "gpt", "value": "A."}],
            "image": images, "choice_list": None,
            "metadata": {"dataset": "Hostile", "split": "train", "num_sample": 1, "task_instruction": "",
                         "question_type": "open-ended"}}  # fmt: skip


def _m4_release(sources: Path, outside: Path) -> list[Case]:
    root = sources / "m4_release"
    bad = [
        (_m4_record(900, [str(outside / "marker.jpg")]), "unsafe_path", "m4 audit: an absolute image path"),
        (_m4_record(901, ["../outside/marker.jpg"]), "unsafe_path", "m4 audit: a ../ image path"),
    ]
    cases = [Case("m4_release", "m4_instruct_annotations.json", loc, reason, what)
             for loc, (_, reason, what) in zip(_append_json(root / "m4_instruct_annotations.json",
                                                            [r for r, _, _ in bad]), bad)]  # fmt: skip
    turns = [{"from": "human", "value": "<image>\nDescribe."}, {"from": "gpt", "value": "A."}]
    video = {"id": "v_out", "video": str(outside / "frames"), "conversations": turns}
    (loc,) = _append_json(root / "m4_instruct_video.json", [video])
    return cases + [Case("m4_release", "m4_instruct_video.json", loc, "unsafe_path", "m4 audit: a frame folder")]


def _st_release(sources: Path, outside: Path) -> list[Case]:
    root = sources / "st_release"
    tvg = root / "stage3" / "tvg.json"
    good = json.loads(tvg.read_text())[0]
    gpt_video = json.loads(json.dumps(good))
    gpt_video["conversations"][0]["value"] = "When does the box cross the middle?"
    gpt_video["conversations"][1]["value"] = "<video> " + gpt_video["conversations"][1]["value"]
    bad = [
        ({**good, "id": "out", "video": "../../outside/marker.mp4"}, "unsafe_path", "an ST video path with ../"),
        ({**gpt_video, "id": "gptvideo"}, "validation", "a <video> only in a gpt turn"),
    ]
    locs = _append_json(tvg, [r for r, _, _ in bad])
    return [Case("st_release", "stage3/tvg.json", loc, reason, what) for loc, (_, reason, what) in zip(locs, bad)]


# --- the corpus itself, record by record (no Ray) --------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    return root, write_hostile_corpus(root)


def outcome(adapter, source: str, record) -> str:
    """The build's own per-record step (process.process_record), without Ray."""
    row = process_record(adapter, source, 0, record, get_exact_key("both"), None, "hostile", "1", "")
    return "written" if row["status"] == "ok" else f"{row['reason']}: {row['detail']}"


def test_every_planted_case_gets_its_reason_through_its_adapter(corpus):
    import yaml

    from m4_pipeline.recipe import parse_recipe

    root, cases = corpus
    recipe = parse_recipe(yaml.safe_load(recipe_text()))
    got = {}
    for src in recipe.sources:
        adapter = get_adapter(src.adapter)(root / "sources" / src.path, src.params, source_name=src.name,
                                           symlinks=src.symlinks)  # fmt: skip
        wanted = {(c.source_file, c.locator) for c in cases if c.source == src.name}
        for record in adapter.list_records():
            if (record.source_file, record.locator) in wanted:
                got[(src.name, record.source_file, record.locator)] = outcome(adapter, src.name, record)
    wrong = []
    for c in cases:
        result = got.get((c.source, c.source_file, c.locator), "not listed")
        if result.split(":")[0] != c.reason:
            wrong.append(f"{c.source} {c.locator} ({c.what}): want {c.reason}, got {result[:160]}")
    assert not wrong, "\n".join(wrong)
