"""Video by reference, as a clip, or as frames: what each mode stores, and that every reader of
the shards (validate, the trainer check, the ST-Align export) gets the same frames back."""

import json
import shutil
import tarfile

import numpy as np
import pytest

from m4_pipeline.executor import run_build
from m4_pipeline.inspect_shards import iter_samples, shard_paths, validate_shards
from m4_pipeline.media.refs import DataRoots, video_frames
from m4_pipeline.recipe import parse_recipe

pytestmark = pytest.mark.slow


def build(miniatures, tmp_path, mode: str, max_side: int = 384):
    root = tmp_path / "sources"
    if not root.exists():
        shutil.copytree(miniatures / "vidstg", root / "vidstg")
    source = {"name": "vidstg", "adapter": "vidstg", "media": mode, "max_side": max_side}
    recipe = parse_recipe({"name": f"modes_{mode}", "output": {"records_per_unit": 4},
                           "dedup": {"exact": True, "near": True}, "sources": [source]})  # fmt: skip
    out = tmp_path / f"out_{mode}_{max_side}"
    manifest = run_build(recipe, root, out, progress=False)
    samples = {s.key: s for _, s, _ in iter_samples(shard_paths(out))}
    return out, manifest, samples


def sample_bytes(out) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for shard in sorted(out.glob("*.tar")):
        with tarfile.open(shard) as tf:
            for m in tf.getmembers():
                key = m.name.split(".", 1)[0]
                sizes[key] = sizes.get(key, 0) + 512 + -(-m.size // 512) * 512
    return sizes


def test_reference_clip_and_frames_hold_the_same_frames(ray_session, miniatures, tmp_path):
    frames_out, _, framed = build(miniatures, tmp_path, "frames")
    clip_out, _, clipped = build(miniatures, tmp_path, "clip")
    ref_out, manifest, referenced = build(miniatures, tmp_path, "reference")
    assert framed.keys() == clipped.keys() == referenced.keys() and len(framed) == 6
    for out in (frames_out, clip_out, ref_out):
        assert validate_shards(out)["problems"] == []
    roots = DataRoots.for_shards(ref_out)
    assert roots.roots["vidstg"] == (tmp_path / "sources" / "vidstg").resolve()
    for key, s in framed.items():
        indices = [m.frame_index for m in s.media]
        clip, ref = clipped[key].media, referenced[key].media
        assert [m.kind for m in clip] == ["clip"] and [m.kind for m in ref] == ["video"]
        assert clip[0].frames == ref[0].frames == indices and len(indices) == 100
        assert clip[0].times() == ref[0].times() == pytest.approx([m.timestamp for m in s.media], abs=0.0005)
        assert ref[0].data == b"" and ref[0].ref["path"].startswith("vidor/video/")
        source = (tmp_path / "sources" / "vidstg" / ref[0].ref["path"]).read_bytes()
        assert ref[0].ref["size"] == len(source)
        jpeg = np.stack(video_frames(s.media))
        for pixels in (video_frames(clip), video_frames(ref, roots)):  # all three give the same picture
            assert np.stack(pixels).shape == jpeg.shape and np.abs(np.stack(pixels).astype(int) - jpeg).mean() < 6
    sizes = {
        mode: sample_bytes(out) for mode, out in (("frames", frames_out), ("clip", clip_out), ("reference", ref_out))
    }
    for key, s in referenced.items():  # a reference costs its record and about 1 KB (100 frame indices)
        described = s.media[0].describe()
        assert len(json.dumps(described)) < 1024 and "timestamps" not in described and described["fps"] > 0
        assert sizes["reference"][key] < sizes["clip"][key] < sizes["frames"][key]


def test_references_resolve_for_the_trainer_and_the_export_and_catch_a_changed_source(ray_session, miniatures,
                                                                                      tmp_path):  # fmt: skip
    from m4_pipeline.export import export_st_align
    from m4_pipeline.train import CheckOptions, run_check

    out, _, referenced = build(miniatures, tmp_path, "reference")
    report = run_check(out, CheckOptions(run_model=False, workers=0))
    assert report["ok"] and report["passed"] == len(referenced), report
    exported = export_st_align(out, tmp_path / "export")
    stage = json.loads((tmp_path / "export" / "stage3" / "vidstg.json").read_text())
    entry = next(iter(referenced.values()))
    assert (
        stage[0]["video"] == entry.media[0].ref["path"] and stage[0]["meta"]["split"] == entry.record["meta"]["split"]
    )
    assert exported["records"] == len(referenced) and not (tmp_path / "export" / "data" / "videos").exists()
    yaml_text = (tmp_path / "export" / "stage3.yaml").read_text()
    assert str((tmp_path / "sources" / "vidstg").resolve()) in yaml_text  # data_folder: the source videos
    video = tmp_path / "sources" / "vidstg" / entry.media[0].ref["path"]
    video.write_bytes(video.read_bytes() + b"\0")  # the source changed after the build
    report = run_check(out, CheckOptions(run_model=False, workers=0))
    assert not report["ok"] and "bad_media" in json.dumps(report["failures"])


def test_frames_are_scaled_to_max_side(ray_session, miniatures, tmp_path):
    _, _, framed = build(miniatures, tmp_path, "frames", max_side=64)
    sizes = {tuple(m.size) for s in framed.values() for m in s.media}
    assert sizes == {(64, 38)} and all(m.ops == ["fit:64"] for s in framed.values() for m in s.media)
