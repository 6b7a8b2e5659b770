import json
import os
from pathlib import Path

import pytest

from m4_pipeline.cli import main


def test_help_everywhere(capsys):
    for argv in ([], ["demo"], ["build"], ["validate"], ["stats"], ["sources"]):
        with pytest.raises(SystemExit) as exc:
            main([*argv, "--help"])
        assert exc.value.code == 0
        assert "usage: m4" in capsys.readouterr().out


def test_sources_lists_every_adapter(capsys):
    assert main(["sources"]) == 0
    out = capsys.readouterr().out
    for name in ("nlvr2", "nextqa", "scanqa", "llava_mix", "vidstg"):
        assert name in out


def test_build_rejects_an_unknown_recipe_key(tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nsources:\n  - adapter: nlvr2\n    params: {splitz: [dev]}\n")
    assert main(["build", str(recipe), "--sources", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "params: unknown key 'splitz'" in capsys.readouterr().err


@pytest.mark.slow
def test_validate_and_stats_on_built_shards(demo_build, capsys):
    out, _ = demo_build
    assert main(["validate", str(out)]) == 0
    assert "50 samples" in capsys.readouterr().out
    assert main(["stats", str(out), "--json", "--tokenizer", "approx"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["samples"] == 50 and stats["per_dataset"]["vidstg"]["media_per_sample"] == 100
    assert set(stats["media_kinds"]) == {"image", "frame", "view", "patch"}
    assert stats["run"]["totals"]["quarantined"] == 1  # the run's logs are folded in
    assert main(["stats", str(out), "--compare", "--scale", "0.0001"]) == 0
    printed = capsys.readouterr().out
    assert "NLVR2" in printed and "Qwen2" in printed


@pytest.mark.slow
def test_report_command_writes_html(demo_build, tmp_path, capsys):
    out, _ = demo_build
    assert main(["report", str(out), "--out", str(tmp_path / "rep"), "--tokenizer", "approx"]) == 0
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "NLVR2" in html and "report:" in capsys.readouterr().out


@pytest.mark.slow
def test_validate_reports_a_tampered_shard(demo_build, tmp_path, capsys):
    import shutil

    out, _ = demo_build
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    shard = sorted(copy.glob("*.tar"))[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside a media member
    shard.write_bytes(bytes(data))
    assert main(["validate", str(copy)]) == 1
    assert "sha256 differs from index.json" in capsys.readouterr().out


# --- user errors: one line, exit 2, no traceback, nothing started (issue #10) -----------------------


def _no_ray(monkeypatch):
    import m4_pipeline.executor as executor

    def boom(*a, **k):
        raise AssertionError("Ray was started for a user error")

    monkeypatch.setattr(executor, "init_ray", boom)


def _build(tmp_path, *extra, recipe_text="name: r\nsources:\n  - {adapter: llava_mix}\n"):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(recipe_text)
    return main(["build", str(recipe), *extra, "-q"])


def test_build_with_out_pointing_at_a_file(tmp_path, capsys, monkeypatch):
    _no_ray(monkeypatch)
    (tmp_path / "src" / "llava_mix").mkdir(parents=True)
    (tmp_path / "file").write_text("x")
    assert _build(tmp_path, "--sources", str(tmp_path / "src"), "--out", str(tmp_path / "file")) == 2
    err = capsys.readouterr().err
    assert f"--out {tmp_path / 'file'} exists and is not a folder" in err and "Traceback" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_build_into_a_read_only_folder(tmp_path, capsys, monkeypatch):
    _no_ray(monkeypatch)
    (tmp_path / "src" / "llava_mix").mkdir(parents=True)
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        assert _build(tmp_path, "--sources", str(tmp_path / "src"), "--out", str(out)) == 2
    finally:
        out.chmod(0o755)
    err = capsys.readouterr().err
    assert f"cannot write to {out}: permission denied" in err and "Traceback" not in err


def test_build_with_a_recipe_name_holding_a_slash(tmp_path, capsys, monkeypatch):
    _no_ray(monkeypatch)
    rc = _build(tmp_path, "--sources", str(tmp_path), "--out", str(tmp_path / "o"),
                recipe_text="name: ../x\nsources:\n  - {adapter: llava_mix}\n")  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "name: '../x' is not a safe name" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_build_with_a_wrong_sources_names_it_before_ray(tmp_path, capsys, monkeypatch):
    _no_ray(monkeypatch)
    rc = _build(tmp_path, "--sources", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    err = capsys.readouterr().err
    assert rc == 2 and f"--sources {tmp_path / 'nope'} does not exist" in err and "Traceback" not in err
    (tmp_path / "src" / "other").mkdir(parents=True)
    rc = _build(tmp_path, "--sources", str(tmp_path / "src"), "--out", str(tmp_path / "o"))
    err = capsys.readouterr().err
    assert rc == 2 and f"source llava_mix: folder {tmp_path / 'src' / 'llava_mix'} does not exist" in err
    assert "--sources holds: other" in err and not (tmp_path / "o").exists()


def test_build_refuses_a_folder_of_foreign_files_before_anything(tmp_path, capsys, monkeypatch):
    _no_ray(monkeypatch)
    (tmp_path / "src" / "llava_mix").mkdir(parents=True)
    out = tmp_path / "o"
    out.mkdir()
    (out / "precious_backup.tar").write_bytes(b"mine")
    assert _build(tmp_path, "--sources", str(tmp_path / "src"), "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert "holds files this tool did not write (precious_backup.tar)" in err and "--overwrite" in err
    assert (out / "precious_backup.tar").read_bytes() == b"mine" and sorted(os.listdir(out)) == ["precious_backup.tar"]


def _one_sample_shard(path):
    from m4_pipeline.formats import from_record
    from m4_pipeline.media.images import encode_jpeg
    from m4_pipeline.sample import Media, Provenance
    from m4_pipeline.synthetic import synthetic_image
    from m4_pipeline.writer import sample_members, write_tar
    from tests.test_formats import M4_RELEASED

    jpeg = encode_jpeg(synthetic_image(1, (64, 48)))
    sample = from_record(json.loads(json.dumps(M4_RELEASED)), "m4", key="x-1",
                         media=[Media("image", 0, jpeg), Media("image", 1, jpeg)],
                         provenance=Provenance("x", "a.json", "index 0"))  # fmt: skip
    return write_tar(path, sample_members(sample))


def test_validate_reports_truncated_and_garbage_shards_and_a_missing_index(tmp_path, capsys):
    good = tmp_path / "good.tar"
    _one_sample_shard(good)
    assert main(["validate", str(good), "-q"]) == 0
    assert "1 samples in 1 shard(s): 0 problem(s)" in capsys.readouterr().out
    data = good.read_bytes()
    (tmp_path / "cut.tar").write_bytes(data[: len(data) // 2])
    (tmp_path / "boundary.tar").write_bytes(data[:1536])  # ends at a header boundary, no end marker
    (tmp_path / "garbage.tar").write_bytes(b"\x00\x01garbage" * 100)
    cases = [
        ("cut.tar", "cut.tar: not a readable tar shard (unexpected end of data)"),
        ("boundary.tar", "boundary.tar: truncated (no end-of-archive marker after its last member, at byte 1536)"),
        ("garbage.tar", "garbage.tar: not a readable tar shard"),
    ]
    for name, message in cases:
        assert main(["validate", str(tmp_path / name), "-q"]) == 1, name
        captured = capsys.readouterr()
        assert message in captured.out and "Traceback" not in captured.err, captured
    folder = tmp_path / "folder"
    folder.mkdir()
    _one_sample_shard(folder / "s-000000.tar")
    assert main(["validate", str(folder), "-q"]) == 1
    out = capsys.readouterr().out
    assert "index.json: missing (the build did not finish" in out and "1 samples in 1 shard(s): 1 problem(s)" in out
    (folder / "index.json").write_text("{not json")
    assert main(["validate", str(folder), "-q"]) == 1
    assert "index.json: unreadable" in capsys.readouterr().out


def test_validate_of_a_missing_path_is_a_user_error(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "is neither a shard nor a folder of shards" in err and "Traceback" not in err


def test_export_never_writes_outside_out(tmp_path):
    """A shard whose record names '../' image paths (shards are untrusted input too)."""
    from m4_pipeline.export import export_llava_json
    from m4_pipeline.formats import from_record
    from m4_pipeline.media.images import encode_jpeg
    from m4_pipeline.sample import Media, Provenance
    from m4_pipeline.synthetic import synthetic_image
    from m4_pipeline.writer import sample_members, write_tar
    from tests.test_formats import M4_RELEASED

    jpeg = encode_jpeg(synthetic_image(1, (64, 48)))
    samples = []
    for key, paths in [("a-1", ["../../escaped.jpg", "ok/b.jpg"]), ("a-2", ["ok/c.jpg", "ok/d.jpg"]),
                       ("a-3", ["/abs/escaped.jpg", "ok/e.jpg"])]:  # fmt: skip
        rec = json.loads(json.dumps(M4_RELEASED))
        rec["image"] = paths
        samples.append(from_record(rec, "m4", key=key, media=[Media("image", 0, jpeg), Media("image", 1, jpeg)],
                                   provenance=Provenance("x", "a.json", "index 0")))  # fmt: skip
    shards = tmp_path / "shards"
    shards.mkdir()
    write_tar(shards / "s-000000.tar", [m for s in samples for m in sample_members(s)])
    out = tmp_path / "deep" / "out"
    report = export_llava_json(shards, out)
    assert report["records"] == 1 and report["skipped"] == {"unsafe_path": 2}
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == ["deep/out/images/ok/c.jpg", "deep/out/images/ok/d.jpg", "deep/out/m4_instruct_annotations.json",
                       "shards/s-000000.tar"]  # fmt: skip


@pytest.mark.slow
def test_the_terminal_holds_our_output_only(miniatures, tmp_path):
    """Ray's INFO/WARNING lines (execution plans, the token notice) never interleave with our
    progress bars: build, validate, stats, export, each in a fresh process with its own Ray."""
    import re
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nsources:\n  - {adapter: llava_mix}\n")
    out = tmp_path / "out"
    commands = [
        ["build", str(recipe), "--sources", str(miniatures), "--out", str(out), "--num-cpus", "1"],
        ["validate", str(out)],
        ["stats", str(out), "--tokenizer", "approx", "--num-cpus", "1"],
        ["export", "parquet", str(out), "--out", str(tmp_path / "pq")],
    ]
    python_log = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\s+(INFO|WARNING|DEBUG)"  # Ray's Python loggers
    ray_line = re.compile(rf"{python_log}|^\[\d{{4}}-\d\d-\d\d .*\] |streaming_executor")  # and its C++ ones
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    for argv in commands:
        proc = subprocess.run([sys.executable, "-m", "m4_pipeline.cli", *argv], capture_output=True, text=True,
                              cwd=root, env=env, timeout=600)  # fmt: skip
        assert proc.returncode == 0, (argv, proc.stderr[-2000:])
        lines = (proc.stdout + proc.stderr).replace("\r", "\n").splitlines()
        foreign = [line for line in lines if ray_line.search(line)]
        assert not foreign, (argv[0], foreign[:5])
        if argv[0] in ("build", "validate", "stats", "export"):
            assert "%|" in proc.stderr, f"{argv[0]}: no progress bar"
