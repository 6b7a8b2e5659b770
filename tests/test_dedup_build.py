"""Near-duplicates and decontamination inside a real build on Ray: cross-source clusters, the
keep policy, a planted benchmark image, and counts that reconcile."""

import json
import shutil

import pytest
from PIL import Image

from m4_pipeline.dedup.evalsets import write_miniature as write_benchmark
from m4_pipeline.executor import run_build
from m4_pipeline.recipe import RecipeError, parse_recipe

pytestmark = pytest.mark.slow


def plant(miniatures, tmp_path):
    root = tmp_path / "sources"
    shutil.copytree(miniatures / "nlvr2", root / "nlvr2")
    copy = root / "nlvr2_copy"
    shutil.copytree(miniatures / "nlvr2", copy)
    for png in copy.rglob("*.png"):  # the same pairs, half the size and JPEG q50 (still named .png)
        img = Image.open(png).convert("RGB")
        img.resize((img.width // 2, img.height // 2)).save(png, "JPEG", quality=50)
    bench = root / "benchmarks" / "interleave"
    write_benchmark("llava_interleave", bench)
    leaked = "Split1/NLVR2/leaked.png"  # one dev image of ours is a benchmark image
    (bench / "eval_images" / leaked).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(root / "nlvr2" / "dev" / "dev-102-0-img0.png", bench / "eval_images" / leaked)
    items = json.loads((bench / "multi_image_in_domain.json").read_text())
    items.append({**items[0], "sample_id": 999, "image": [leaked] + items[0]["image"][1:]})
    (bench / "multi_image_in_domain.json").write_text(json.dumps(items))
    return root


def test_near_duplicates_and_decontamination_in_a_build(ray_session, miniatures, tmp_path):
    root = plant(miniatures, tmp_path)
    recipe = parse_recipe({
        "name": "dedup", "version": "1", "output": {"records_per_unit": 3},
        "dedup": {"exact": True, "near": True, "near_params": {"image_threshold": 6},
                  "decontaminate": {"llava_interleave": "benchmarks/interleave"}},
        "sources": [
            {"name": "nlvr2", "adapter": "nlvr2", "params": {"splits": ["train", "dev"]}},
            {"name": "nlvr2_copy", "adapter": "nlvr2", "path": "nlvr2_copy", "params": {"splits": ["train", "dev"]}},
        ],
    })  # fmt: skip
    out = tmp_path / "out"
    manifest = run_build(recipe, root, out, progress=False)
    s = manifest["sources"]
    # every copy is a near-duplicate of its original (same text, smaller recompressed images):
    # the keep policy keeps the higher resolution, so the originals stay
    assert s["nlvr2_copy"]["written"] == 0 and s["nlvr2_copy"]["duplicates"] + s["nlvr2_copy"]["decontaminated"] == 12
    assert s["nlvr2"]["decontaminated"] == 2  # the two sentences over the leaked image pair
    assert s["nlvr2"]["written"] == 10
    for st in s.values():
        assert st["read"] == st["written"] + sum(st["quarantined"].values()) + st["duplicates"] + st["decontaminated"]
    clusters = [json.loads(x) for x in (out / "near_duplicates.jsonl").read_text().splitlines()]
    assert clusters and all(c["kept"].startswith("nlvr2-") for c in clusters)
    assert all(any(m.startswith("nlvr2_copy-") for m in c["members"]) for c in clusters)  # cross-source
    found = [json.loads(x) for x in (out / "decontamination.jsonl").read_text().splitlines()]
    assert {r["benchmark"] for r in found} == {"llava_interleave/multi_image_in_domain"}
    assert {r["training_key"] for r in found if r["training_key"].startswith("nlvr2-")} == {
        "nlvr2-dev-102-0-0", "nlvr2-dev-102-0-1"}  # fmt: skip
    assert manifest["decontamination"]["llava_interleave/multi_image_in_domain"]["training_samples"] >= 2
    kept = json.loads((out / "duplicates.jsonl").read_text().splitlines()[0])
    assert kept["reason"].startswith("near_")


def test_recipe_rejects_unknown_benchmark_and_bad_params():
    base = {"name": "r", "sources": [{"adapter": "nlvr2"}]}
    with pytest.raises(RecipeError, match="unknown benchmark 'mmbench'"):
        parse_recipe({**base, "dedup": {"decontaminate": {"mmbench": "x"}}})
    with pytest.raises(RecipeError, match="near_params: unknown key 'radius'"):
        parse_recipe({**base, "dedup": {"near": True, "near_params": {"radius": 3}}})
    with pytest.raises(RecipeError, match="exact_key"):
        parse_recipe({**base, "dedup": {"exact_key": "pixels"}})


def test_the_streaming_stages_equal_the_in_process_ones(ray_session, miniatures, tmp_path, monkeypatch):
    """Past IN_PROCESS_ROWS valid samples, exact dedup, near-dedup and the key-sorted final pass
    run as Ray Data stages that stream through the driver: the shards and every report are the
    same bytes as when they run in the driver's process."""
    from m4_pipeline import executor

    root = plant(miniatures, tmp_path)
    shutil.copytree(root / "nlvr2", root / "nlvr2_exact")  # exact duplicates too
    recipe = parse_recipe({
        "name": "stream", "version": "1", "output": {"records_per_unit": 2, "shard_max_samples": 5},
        "dedup": {"exact": True, "near": True, "decontaminate": {"llava_interleave": "benchmarks/interleave"}},
        "sources": [
            {"name": "nlvr2", "adapter": "nlvr2", "params": {"splits": ["train", "dev"]}},
            {"name": "nlvr2_copy", "adapter": "nlvr2", "path": "nlvr2_copy", "params": {"splits": ["train", "dev"]}},
            {"name": "nlvr2_exact", "adapter": "nlvr2", "path": "nlvr2_exact", "params": {"splits": ["train"]}},
        ],
    })  # fmt: skip
    run_build(recipe, root, tmp_path / "in_process", progress=False)
    monkeypatch.setattr(executor, "IN_PROCESS_ROWS", 0)
    manifest = run_build(recipe, root, tmp_path / "streamed", progress=False)
    assert manifest["sources"]["nlvr2_exact"]["duplicates"] == 6
    for name in sorted(p.name for p in (tmp_path / "in_process").iterdir() if p.name != "manifest.json"):
        assert (tmp_path / "streamed" / name).read_bytes() == (tmp_path / "in_process" / name).read_bytes(), name
