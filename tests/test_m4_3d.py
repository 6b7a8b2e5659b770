"""3D views from ``scannet_frames_25k``: 6-digit frame names, scene-level intrinsics, failed poses;
3D-LLM ScanNet rows and ScanQA over the same view source."""

import pytest

from m4_pipeline.adapters import get_adapter
from m4_pipeline.adapters.scannet25k import Frames25kScene
from m4_pipeline.errors import SourceError
from m4_pipeline.paths import SourceRoot
from m4_pipeline.validate import validate_sample


def test_frames25k_scene_skips_failed_poses_and_names_frames_with_six_digits(miniatures):
    root = miniatures / "threedllm"
    assert sorted(p.name for p in (root / "scannet_frames_25k" / "scene0000_00" / "color").iterdir())[:2] == [
        "000000.jpg", "000100.jpg"]  # fmt: skip
    scene = Frames25kScene(SourceRoot(root), "scannet_frames_25k", "scene0000_00")
    assert 400 not in scene.pose_ids() and scene.pose_ids()[:4] == [0, 100, 200, 300]  # 000400 holds -inf
    assert scene.color_rel(300) == "scannet_frames_25k/scene0000_00/color/000300.jpg"


def test_threedllm_lists_scannet_rows_with_recorded_views(miniatures):
    adapter = get_adapter("threedllm")(miniatures / "threedllm")
    records = list(adapter.list_records())
    assert all(r.data["scene_id"].startswith("scene") for r in records) and len(records) == 5  # HM3D row left out
    built, failed = [], {}
    for r in records:
        try:
            built.append(adapter.build(r))
        except SourceError as err:
            failed[r.data["scene_id"]] = err.reason
    assert failed == {"scene0011_01": "invalid_annotation", "scene0999_00": "missing_media"}
    first = built[0]
    assert validate_sample(first) == [] and first.record["metadata"]["dataset"] == "ScanNet"
    assert first.record["image"] == [f"scannet_frames_25k/scene0000_00/color/{n:06d}.jpg" for n in (0, 200, 600, 800)]
    assert [m.ops for m in first.media][0] == ["frames25k:trajectory:4:0"] and all(
        m.kind == "view" for m in first.media
    )
    k = first.media[0].intrinsics  # ScanNet's 1296x968 intrinsics scaled to the 80x60 frame
    assert k[0][0] == pytest.approx(1170.19 * 80 / 1296) and k[1][2] == pytest.approx(483.75 * 60 / 968)
    assert built[2].provenance.ops == ["answers:first_of_2"]


def test_scanqa_reads_the_same_frames25k_view_source(miniatures):
    cls = get_adapter("scanqa")
    adapter = cls(miniatures / "scanqa", cls.Params(view_source="frames25k", views=3))
    samples = [adapter.build(r) for r in adapter.list_records()]
    assert all(validate_sample(s) == [] for s in samples)
    first = samples[0]
    assert first.record["image"][0] == "scannet_frames_25k/scene0000_00/color/000000.jpg"
    assert "scannet_frames_25k/scene0000_00/color/000100.jpg" not in first.record["image"]  # its pose is -inf
    assert len(first.media) == 3 and first.media[0].pose is not None
