"""Each export read back by its consumer: LLaVA-NeXT's JSON + image folder, LLaVA-ST's stage YAML
+ videos sampled by its 100-frame rule, HF datasets over parquet and over the tar shards."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from m4_pipeline.export import export_llava_json, export_parquet, export_st_align, webdataset_features
from m4_pipeline.inspect_shards import iter_samples, shard_paths

pytestmark = pytest.mark.slow


def shard_samples(out):
    return {s.key: s for _, s, _ in iter_samples(shard_paths(out))}


def test_llava_json_export_reads_like_llava_next(demo_build, tmp_path):
    out, _ = demo_build
    report = export_llava_json(out, tmp_path / "m4")
    records = json.loads((tmp_path / "m4" / "m4_instruct_annotations.json").read_text())
    assert report["records"] == len(records) == 44 and report["skipped"] == {"family st": 6}
    datasets = {r["metadata"]["dataset"] for r in records}
    assert datasets == {"NLVR2", "NExT-QA", "ScanQA", "LLaVA-1.5-mix665k"}
    for r in records:  # what LLaVA-NeXT's LazySupervisedDataset does with a multi-image record
        assert "provenance" not in r and r["conversations"][0]["from"] == "human"
        images = [Image.open(tmp_path / "m4" / "images" / rel).convert("RGB") for rel in r["image"]]
        assert sum(t["value"].count("<image>") for t in r["conversations"]) == len(images)
    mix = next(r for r in records if r["metadata"]["dataset"] == "LLaVA-1.5-mix665k")
    canvas = Image.open(tmp_path / "m4" / "images" / mix["image"][0])
    assert canvas.size == (768, 768)  # 640x480 -> 2x2 anyres canvas, re-tiled identically by the trainer


def test_st_align_export_reads_like_llava_st(demo_build, tmp_path):
    import decord

    out, _ = demo_build
    report = export_st_align(out, tmp_path / "st")
    assert report["records"] == 6
    stage = yaml.safe_load((tmp_path / "st" / "stage3.yaml").read_text())
    (entry,) = stage["datasets"]  # one entry per source, as LLaVA-ST's trainer expects
    assert entry["sampling_strategy"] == "all" and entry["source"] == "vidstg"
    # absolute: LLaVA-ST opens them from its own working directory, not from ours
    assert Path(entry["json_path"]).is_absolute() and Path(entry["data_folder"]).is_absolute()
    assert Path(entry["data_folder"]) == tmp_path / "st" / "data"
    samples = shard_samples(out)
    for record in json.loads(open(entry["json_path"]).read()):
        s, e = record["meta"]["split"]
        vr = decord.VideoReader(str(tmp_path / "st" / "data" / record["video"]))
        duration = e - s + 1
        idx = [s + round(i / 99 * (duration - 1)) for i in range(100)]  # LLaVA-ST's loader
        frames = vr.get_batch(idx).asnumpy()
        original = samples[f"vidstg-{record['id']}"]
        assert record["meta"]["source_split"] == original.record["meta"]["split"]
        assert record["variables"] == original.record["variables"]
        for k in (0, 50, 99):
            ref = np.asarray(Image.open(io.BytesIO(original.media[k].data)).convert("RGB")).astype(int)
            assert np.abs(frames[k].astype(int) - ref).mean() < 6


def test_parquet_and_webdataset_load_with_hf_datasets(demo_build, tmp_path):
    datasets = pytest.importorskip("datasets")
    out, manifest = demo_build
    report = export_parquet(out, tmp_path / "pq")
    ds = datasets.load_dataset("parquet", data_files=report["files"], split="train", cache_dir=str(tmp_path / "c1"))
    assert len(ds) == manifest["totals"]["written"] == report["rows"]
    assert ds.features["record"] == datasets.Json() and ds.features["images"] == datasets.List(datasets.Image())
    for row in ds:  # the record is a dict and the media are images, with no decoding by hand
        assert row["record"]["provenance"]["dataset"] == row["dataset"]
        assert len(row["images"]) == len(row["record"]["provenance"]["media"]) > 0
        assert all(isinstance(im, Image.Image) and im.size[0] > 0 for im in row["images"][:3])
    st = next(r for r in ds if r["family"] == "st")
    assert len(st["images"]) == 100 and st["record"]["variables"]["temporal_output_locations"]
    wds = datasets.load_dataset(
        "webdataset",
        data_files={"train": [str(p) for p in shard_paths(out)]},
        features=webdataset_features(out),
        split="train",
        cache_dir=str(tmp_path / "c2"),
    )
    assert len(wds) == manifest["totals"]["written"]
    st = next(r for r in wds if r["json"]["provenance"]["family"] == "st")
    assert st["99.jpg"] is not None and st["99.jpg"].size == (160, 96)
    m4 = next(r for r in wds if r["json"]["metadata"]["dataset"] == "NLVR2")
    assert m4["1.jpg"] is not None and m4["2.jpg"] is None


def test_st_align_paths_relative_to_the_yaml_with_the_flag(demo_build, tmp_path, monkeypatch):
    out, _ = demo_build
    export_st_align(out, tmp_path / "rel", relative=True)
    yaml_path = tmp_path / "rel" / "stage3.yaml"
    (entry,) = yaml.safe_load(yaml_path.read_text())["datasets"]
    assert entry["json_path"] == "stage3/vidstg.json" and entry["data_folder"] == "data"
    monkeypatch.chdir(tmp_path)  # the trainer resolves them against the YAML's folder
    assert (yaml_path.parent / entry["json_path"]).is_file() and (yaml_path.parent / entry["data_folder"]).is_dir()
