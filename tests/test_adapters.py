import csv
import dataclasses
import json

import pytest

from m4_pipeline.adapters import ADAPTERS, get_adapter
from m4_pipeline.validate import validate_sample


def test_unknown_adapter_lists_the_valid_ones():
    with pytest.raises(KeyError, match="valid adapters: .*llava_mix.*nextqa.*nlvr2.*vidstg"):
        get_adapter("coco")


def build_all(name, root, **params):
    cls = ADAPTERS[name]
    adapter = cls(root / name, dataclasses.replace(cls.Params(), **params))
    samples = []
    for record in adapter.list_records():
        samples.append(adapter.build(record))
    return samples


def test_miniatures_follow_the_published_layouts(miniatures):
    nlvr2 = miniatures / "nlvr2"
    line = json.loads((nlvr2 / "data" / "train.json").read_text().splitlines()[0])
    assert {
        "identifier",
        "sentence",
        "label",
        "left_url",
        "right_url",
        "synset",
        "query",
        "writer",
        "validation",
        "extra_validations",
        "directory",
    } <= set(line)
    stem = line["identifier"].rsplit("-", 1)[0]
    assert (nlvr2 / "images" / "train" / str(line["directory"]) / f"{stem}-img0.png").is_file()
    assert "directory" not in json.loads((nlvr2 / "data" / "dev.json").read_text().splitlines()[0])
    with open(miniatures / "nextqa" / "dataset" / "nextqa" / "train.csv") as fh:
        assert next(csv.reader(fh)) == "video,frame_count,width,height,question,answer,qid,type,a0,a1,a2,a3,a4".split(
            ","
        )
    vid_map = json.loads((miniatures / "nextqa" / "dataset" / "nextqa" / "map_vid_vidorID.json").read_text())
    assert all((miniatures / "nextqa" / "NExTVideo" / f"{v}.mp4").is_file() for v in vid_map.values())
    scene = miniatures / "scanqa" / "scans" / "scene0000_00"
    for rel in (
        "scene0000_00_vh_clean_2.ply",
        "scene0000_00.txt",
        "pose/0.txt",
        "intrinsic/intrinsic_color.txt",
        "color/0.jpg",
        "depth/0.png",
    ):
        assert (scene / rel).is_file(), rel
    qa = json.loads((miniatures / "scanqa" / "qa" / "ScanQA_v1.0_train.json").read_text())[0]
    assert set(qa) == {"answers", "object_ids", "object_names", "question", "question_id", "scene_id"}
    mix = json.loads((miniatures / "llava_mix" / "llava_v1_5_mix665k.json").read_text())
    assert any("image" not in e for e in mix) and mix[0]["conversations"][0]["value"].startswith("<image>")
    entry = json.loads((miniatures / "vidstg" / "annotations" / "train_annotations.json").read_text())[0]
    assert {
        "vid",
        "fps",
        "frame_count",
        "used_segment",
        "width",
        "height",
        "subject/objects",
        "used_relation",
        "temporal_gt",
        "captions",
        "questions",
    } == set(entry)
    assert list((miniatures / "vidstg" / "vidor" / "annotation" / "training").glob(f"*/{entry['vid']}.json"))


def test_nlvr2_sample(miniatures):
    s = build_all("nlvr2", miniatures, splits=["dev"])[0]
    assert s.record["image"] == ["nlvr2/dev/dev-100-0-img0.png", "nlvr2/dev/dev-100-0-img1.png"]
    assert s.record["choice_list"] == ["True", "False"] and s.conversations[1].value in ("True", "False")
    assert [m.kind for m in s.media] == ["image", "image"]
    assert s.media[0].data[:2] == b"\xff\xd8" and s.media[0].ops == ["jpeg:95"]  # PNG source re-encoded
    padded = build_all("nlvr2", miniatures, splits=["dev"], pad_to_square=True)[0]
    assert padded.media[0].size == [320, 320] and padded.media[0].ops[-1] == "pad_to_square"
    assert s.record["metadata"]["split"] == "dev" and s.record["metadata"]["task_instruction"] == ""
    told = build_all("nlvr2", miniatures, splits=["dev"], task_instruction="Decide whether the statement is true.")
    assert told[0].record["metadata"]["task_instruction"] == "Decide whether the statement is true."


def test_nextqa_frames_are_uniform_with_indices(miniatures):
    s = build_all("nextqa", miniatures, frames=5)[0]
    assert [m.frame_index for m in s.media] == [0, 11, 22, 33, 44]  # linspace over 45 frames
    assert s.conversations[0].value.count("<image>") == 5 and s.conversations[1].value == "A"
    assert s.record["image"][1] == "nextqa/4010069381/frame_000011.jpg"
    told = build_all("nextqa", miniatures, frames=5, task_instruction="Answer with the option's letter.")[0]
    assert told.record["metadata"]["task_instruction"] == "Answer with the option's letter."
    by_fps = build_all("nextqa", miniatures, frames=32, frame_strategy="fps", video_fps=2.0)[0]
    assert [m.frame_index for m in by_fps.media] == list(range(0, 45, 15))  # every 30/2 = 15th frame
    assert [m.timestamp for m in by_fps.media] == [0.0, 0.5, 1.0]


def test_scanqa_views_carry_pose_and_intrinsics(miniatures):
    s = build_all("scanqa", miniatures, views=3, render_size=[128, 96])[0]
    assert [m.kind for m in s.media] == ["view"] * 3
    assert all(len(m.pose) == 4 and len(m.intrinsics) == 3 and m.size == [128, 96] for m in s.media)
    assert s.media[0].pose != s.media[1].pose
    photos = build_all("scanqa", miniatures, views=3, view_source="frames")[0]
    assert [m.ops for m in photos.media] == [["frame:0"], ["frame:6"], ["frame:11"]]
    assert photos.media[0].size == [64, 48] and photos.media[0].pose == s.media[0].pose  # same trajectory poses
    k = photos.media[0].intrinsics  # ScanNet's 1296x968 colour intrinsics, scaled to the 64x48 recorded frame
    assert k[0][0] == pytest.approx(1170.19 * 64 / 1296) and k[1][1] == pytest.approx(1170.19 * 48 / 968)
    assert k[0][2] == pytest.approx(647.75 * 64 / 1296) and k[1][2] == pytest.approx(483.75 * 48 / 968)


def test_llava_mix_patches_record_their_grid(miniatures):
    samples = build_all("llava_mix", miniatures, include_text_only=True)
    s = samples[0]  # 640x480 -> 2x2 grid
    assert [m.grid for m in s.media] == [None, [0, 0], [0, 1], [1, 0], [1, 1]]
    assert {m.slot for m in s.media} == {0} and s.record["image"] == ["coco/train2017/000000033471.jpg"]
    keys = [x.key for x in samples[:6]]
    assert len(set(keys)) == 6 and sum(k.startswith("llava_mix-000000033471-") for k in keys) == 2  # repeated id
    text_only = samples[-1]
    assert text_only.media == [] and text_only.record["image"] == [] and validate_sample(text_only) == []


def test_vidstg_st_sample_lape_values(miniatures):
    samples = build_all("vidstg", miniatures)
    s = samples[0]
    assert s.record["meta"] == {"split": [5, 149]} and len(s.media) == 100
    assert [m.frame_index for m in s.media][:3] == [5, 6, 8] and s.media[-1].frame_index == 149
    temporal = s.record["variables"]["temporal_output_locations"]
    # temporal_gt [37, 75) -> frames 37..74 -> (37-5)/144 and (74-5)/144
    assert temporal[:2] == [round(32 / 144, 3), round(69 / 144, 3)]
    n_boxes = s.conversations[1].value.count("[<WIDTH-OUTPUT>")
    in_span = {m.frame_index for m in s.media if 37 <= m.frame_index <= 74}
    assert n_boxes == len(in_span) == len(temporal) - 2
    widths = s.record["variables"]["spatial_width_output_locations"]
    assert len(widths) == 2 * n_boxes and all(a < b for a, b in zip(widths[::2], widths[1::2]))
    assert "<video>" in s.conversations[0].value and "{<TEMP-OUTPUT><TEMP-OUTPUT>}" in s.conversations[1].value
    short = [x for x in samples if x.record["meta"]["split"] == [5, 79]][0]  # 75 frames in range -> repeats
    assert len(short.media) == 100
