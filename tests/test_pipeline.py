"""End to end on a real local Ray: the demo build, read back with webdataset, bad inputs."""

import dataclasses
import json
import shutil

import pytest
import webdataset as wds

from m4_pipeline.executor import run_build
from m4_pipeline.inspect_shards import validate_shards
from m4_pipeline.recipe import parse_recipe

pytestmark = pytest.mark.slow


def test_demo_build_writes_all_five_sources(demo_build):
    out, manifest = demo_build
    t = manifest["totals"]
    assert t["read"] == t["written"] + t["quarantined"] + t["duplicates"]
    assert (t["read"], t["written"], t["quarantined"], t["duplicates"]) == (52, 50, 1, 1)
    for name, s in manifest["sources"].items():
        assert s["written"] > 0, name
        assert s["read"] == s["written"] + sum(s["quarantined"].values()) + s["duplicates"]
    assert manifest["sources"]["llava_mix"]["quarantined"] == {"filtered": 1}
    index = json.loads((out / "index.json").read_text())
    assert [s["name"] for s in index["shards"]] == sorted(p.name for p in out.glob("*.tar"))
    assert sum(s["samples"] for s in index["shards"]) == 50
    assert all(s["samples"] <= 16 for s in index["shards"])  # rotated by count
    assert not (out / "_work").exists() and not list(out.glob("*.tmp"))
    phases = manifest["phase_seconds"]  # where the wall time went, phase by phase
    assert list(phases) == ["start_and_list", "process", "dedup", "final_pass", "write"]
    assert all(v >= 0 for v in phases.values()) and sum(phases.values()) <= manifest["wall_seconds"]


def test_shards_read_back_with_webdataset_and_validate(demo_build):
    out, _ = demo_build
    items = list(wds.WebDataset(sorted(str(p) for p in out.glob("*.tar")), shardshuffle=False))
    assert len(items) == 50
    keys = [it["__key__"] for it in items]
    assert keys == sorted(keys) and len(set(keys)) == 50
    by_family = {}
    for it in items:
        rec = json.loads(it["json"])
        prov = rec["provenance"]
        assert prov["recipe"] == "demo" and prov["recipe_version"] == "1" and prov["source_file"] and prov["locator"]
        media_fields = sorted(k for k in it if k[0].isdigit())
        assert len(media_fields) == len(prov["media"])
        by_family.setdefault(prov["family"], []).append(rec)
        if prov["family"] == "m4":
            assert rec["metadata"]["num_sample"] == sum(
                1
                for x in items
                if json.loads(x["json"]).get("metadata", {}).get("dataset") == rec["metadata"]["dataset"]
            )
            assert len(rec["image"]) == sum(v.count("<image>") for v in (c["value"] for c in rec["conversations"]))
    assert all(len(r["provenance"]["media"]) == 100 for r in by_family["st"])
    report = validate_shards(out)
    assert report == {"shards": len(list(out.glob("*.tar"))), "samples": 50, "problems": []}


def test_output_is_byte_identical_whatever_the_work_split(demo_build, miniatures, demo_recipe, tmp_path):
    out, _ = demo_build
    recipe = dataclasses.replace(demo_recipe, output=dataclasses.replace(demo_recipe.output, records_per_unit=3))
    again = tmp_path / "again"
    run_build(recipe, miniatures, again, progress=False)
    first = {p.name: p.read_bytes() for p in out.glob("*.tar")}
    second = {p.name: p.read_bytes() for p in again.glob("*.tar")}
    assert first == second
    assert (out / "index.json").read_text() == (again / "index.json").read_text()
    assert (out / "quarantine.jsonl").read_text() == (again / "quarantine.jsonl").read_text()


def corrupt_copy(miniatures, tmp_path):
    root = tmp_path / "sources"
    for name in ("nlvr2", "nextqa", "llava_mix", "vidstg"):
        shutil.copytree(miniatures / name, root / name)
    dev = root / "nlvr2" / "data" / "dev.json"
    lines = dev.read_text().splitlines()
    lines.insert(1, '{"identifier": "dev-999-0-0", "sentence": "broken')  # malformed JSON line
    dev.write_text("\n".join(lines) + "\n")
    (root / "nlvr2" / "dev" / "dev-101-0-img1.png").unlink()  # missing image (2 sentences use it)
    jpg = root / "llava_mix" / "gqa" / "images" / "2354786.jpg"  # truncated JPEG (2 entries use it)
    jpg.write_bytes(jpg.read_bytes()[:300])
    vid_map = json.loads((root / "nextqa" / "dataset" / "nextqa" / "map_vid_vidorID.json").read_text())
    (root / "nextqa" / "NExTVideo" / f"{vid_map['4010069381']}.mp4").write_bytes(b"")  # zero-byte video
    ann = root / "vidstg" / "annotations" / "train_annotations.json"
    entries = json.loads(ann.read_text())
    entries[0]["temporal_gt"] = {"begin_fid": 400, "end_fid": 420}  # outside the used segment
    ann.write_text(json.dumps(entries))
    return root


def test_bad_inputs_are_quarantined_and_the_run_completes(ray_session, miniatures, tmp_path):
    root = corrupt_copy(miniatures, tmp_path)
    recipe = parse_recipe({
        "name": "bad", "version": "1", "output": {"records_per_unit": 2},
        "sources": [
            {"name": "nlvr2", "adapter": "nlvr2", "params": {"splits": ["dev"]}},
            {"name": "nextqa", "adapter": "nextqa", "params": {"splits": ["train"]}},
            {"name": "llava_mix", "adapter": "llava_mix"},
            {"name": "vidstg", "adapter": "vidstg"},
        ],
    })  # fmt: skip
    out = tmp_path / "out"
    manifest = run_build(recipe, root, out, progress=False)
    q = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    reasons = {(r["source"], r["reason"]) for r in q}
    assert ("nlvr2", "parse_error") in reasons
    assert ("nlvr2", "missing_media") in reasons
    assert ("llava_mix", "bad_media") in reasons
    assert ("nextqa", "bad_media") in reasons
    assert ("vidstg", "invalid_annotation") in reasons
    by = {(r["source"], r["locator"]): r for r in q}
    assert "malformed JSON" in by[("nlvr2", "line 2")]["detail"]
    assert any("zero-byte video" in r["detail"] for r in q if r["source"] == "nextqa")
    assert any("2354786.jpg: cannot decode" in r["detail"] for r in q if r["source"] == "llava_mix")
    s = manifest["sources"]
    assert s["nlvr2"] == {
        "listed": 7,
        "read": 7,
        "written": 4,
        "quarantined": {"missing_media": 2, "parse_error": 1},
        "duplicates": 0,
        "decontaminated": 0,
    }
    assert s["nextqa"]["quarantined"] == {"bad_media": 2}  # both questions on the zero-byte video
    assert s["llava_mix"]["quarantined"] == {"bad_media": 2, "filtered": 1}
    for st in s.values():
        assert st["read"] == st["written"] + sum(st["quarantined"].values()) + st["duplicates"]
    assert validate_shards(out)["problems"] == []
