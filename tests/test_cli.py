import json

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
