"""Faults that must stop a build (issue #10), each with one line that names the cause and no
traceback: an annotation or side file that cannot be read (named with its position), a
configuration or environment fault (before any record is processed and before the output
folder is touched), and a source that quarantines more than its ``max_quarantine_fraction``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import m4_pipeline.executor as executor
from m4_pipeline.cli import main

ROOT = Path(__file__).resolve().parent.parent


def recipe(tmp_path: Path, body: str, name: str = "faults") -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(f"name: {name}\nversion: '1'\noutput: {{records_per_unit: 4}}\nsources:\n{body}")
    return path


def copy_source(miniatures: Path, tmp_path: Path, name: str) -> Path:
    dest = tmp_path / "sources" / name
    shutil.copytree(miniatures / name, dest)
    return dest


def build(tmp_path: Path, recipe_path: Path, capsys) -> tuple[int, str]:
    rc = main(["build", str(recipe_path), "--sources", str(tmp_path / "sources"), "--out", str(tmp_path / "out"),
               "-q"])  # fmt: skip
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


@pytest.fixture
def no_ray(monkeypatch):
    """The fault must be found before Ray starts."""

    def boom(*a, **k):
        raise AssertionError("Ray was started before the fault was found")

    monkeypatch.setattr(executor, "init_ray", boom)


def test_invalid_utf8_in_an_annotation_file_names_it_and_the_byte(ray_session, miniatures, tmp_path, capsys):
    """Listing runs in Ray tasks (the driver reads no records): the fault stops the build there,
    in one line, before --out is touched."""
    root = copy_source(miniatures, tmp_path, "llava_mix")
    ann = root / "llava_v1_5_mix665k.json"
    ann.write_bytes(ann.read_bytes()[:100] + b"\xff\xfe" + ann.read_bytes()[100:])
    rc, err = build(tmp_path, recipe(tmp_path, "  - {adapter: llava_mix}\n"), capsys)
    assert rc == 2 and "llava_v1_5_mix665k.json near byte 100: not valid UTF-8" in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_invalid_utf8_in_one_json_line_quarantines_that_line_naming_it(miniatures, tmp_path):
    """A JSON-lines file is read line by line: one line that is not UTF-8 is that record's
    parse_error (naming file and line); a file that is all bad trips max_quarantine_fraction."""
    from m4_pipeline.adapters import get_adapter

    root = copy_source(miniatures, tmp_path, "nlvr2")
    dev = root / "data" / "dev.json"
    lines = dev.read_bytes().split(b"\n")
    lines[2] = lines[2][:40] + b"\xff" + lines[2][40:]
    dev.write_bytes(b"\n".join(lines))
    cls = get_adapter("nlvr2")
    records = list(cls(root, cls.Params(splits=["dev"])).list_records())
    bad = [r for r in records if r.error]
    want = [("line 3", "data/dev.json line 3: not valid UTF-8 (invalid start byte)")]
    assert [(r.locator, r.error) for r in bad] == want


def test_a_truncated_mix_json_names_it_and_the_position(ray_session, miniatures, tmp_path, capsys):
    root = copy_source(miniatures, tmp_path, "llava_mix")
    ann = root / "llava_v1_5_mix665k.json"
    ann.write_text(ann.read_text()[:700])
    rc, err = build(tmp_path, recipe(tmp_path, "  - {adapter: llava_mix}\n"), capsys)
    assert rc == 2 and "llava_v1_5_mix665k.json at byte 437: malformed JSON in item 1" in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_malformed_side_file_read_by_workers_stops_the_build_naming_it(ray_session, miniatures, tmp_path, capsys):
    root = copy_source(miniatures, tmp_path, "nextqa")
    (root / "dataset" / "nextqa" / "map_vid_vidorID.json").write_text('{"4010069381": "0000/40100')
    rc, err = build(tmp_path, recipe(tmp_path, "  - {adapter: nextqa}\n"), capsys)
    assert rc == 2 and "dataset/nextqa/map_vid_vidorID.json" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "out" / "index.json").exists()


@pytest.mark.slow
def test_a_malformed_vidor_json_stops_the_build_naming_it(ray_session, miniatures, tmp_path, capsys):
    root = copy_source(miniatures, tmp_path, "vidstg")
    vidor = next((root / "vidor" / "annotation" / "training").rglob("*.json"))
    vidor.write_text(vidor.read_text()[:500])
    rc, err = build(tmp_path, recipe(tmp_path, "  - {adapter: vidstg}\n"), capsys)
    rel = vidor.relative_to(root).as_posix()
    assert rc == 2 and rel in err and len(err.strip().splitlines()) == 1, err


def test_a_bad_frame_strategy_stops_at_load(tmp_path, capsys, no_ray):
    (tmp_path / "sources" / "nextqa").mkdir(parents=True)
    rc, err = build(tmp_path, recipe(tmp_path, "  - {adapter: nextqa, params: {frame_strategy: random}}\n"), capsys)
    assert rc == 2 and "frame_strategy: 'random' is not one of" in err
    assert not (tmp_path / "out").exists()


def test_a_missing_stage_yaml_stops_before_any_record(miniatures, tmp_path, capsys, no_ray):
    copy_source(miniatures, tmp_path, "st_release")
    body = "  - {adapter: st_release, params: {stages: [stage1.yaml, stage3.yaml]}}\n"
    rc, err = build(tmp_path, recipe(tmp_path, body), capsys)
    assert rc == 2 and "stage1.yaml: annotation file not found" in err
    assert not (tmp_path / "out").exists()


def test_open3d_missing_stops_before_any_record(miniatures, tmp_path):
    copy_source(miniatures, tmp_path, "scanqa")
    blocker = tmp_path / "no_open3d" / "open3d"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('open3d is not installed (test)')\n")
    path = recipe(tmp_path, "  - {adapter: scanqa}\n")
    env = {**os.environ, "PYTHONPATH": f"{blocker.parent}{os.pathsep}{ROOT}"}
    cmd = [sys.executable, "-m", "m4_pipeline.cli", "build", str(path), "--sources", str(tmp_path / "sources"),
           "--out", str(tmp_path / "out"), "-q"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "3D rendering needs open3d" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_past_max_quarantine_fraction_the_build_fails_naming_the_reason(ray_session, miniatures, tmp_path, capsys):
    root = copy_source(miniatures, tmp_path, "llava_mix")
    ann = root / "llava_v1_5_mix665k.json"
    items = json.loads(ann.read_text())
    bad = [dict(items[0], id=f"gone{i}", image=f"coco/train2017/missing{i}.jpg") for i in range(6)]
    ann.write_text(json.dumps(items + bad))  # 6 of 14 missing, 1 filtered on purpose (not counted)
    rc, err = build(tmp_path, recipe(tmp_path, "  - {adapter: llava_mix, max_quarantine_fraction: 0.4}\n"), capsys)
    assert rc == 2, err
    want = "source llava_mix: 6 of 14 records quarantined (43% > max_quarantine_fraction 40%); mostly missing_media"
    assert want in err
    out = tmp_path / "out"
    assert not (out / "index.json").exists() and len((out / "quarantine.jsonl").read_text().splitlines()) == 7
    (tmp_path / "recipe.yaml").write_text((tmp_path / "recipe.yaml").read_text().replace("0.4", "0.5"))
    rc, err = build(tmp_path, tmp_path / "recipe.yaml", capsys)  # the default, 0.5: built
    assert rc == 0 and (out / "index.json").is_file()
