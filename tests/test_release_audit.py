"""The released datasets as sources: their miniatures carry the known defects of the releases,
and an audit build finds each one and names the sample."""

import json

import pytest

from m4_pipeline.adapters import ADAPTERS, write_miniature
from m4_pipeline.cli import main


def test_m4_release_reads_archives_and_frame_folders(tmp_path):
    write_miniature("m4_release", tmp_path)
    adapter = ADAPTERS["m4_release"](tmp_path)
    built = {}
    for record in adapter.list_records():
        try:
            sample = adapter.build(record)
        except Exception:
            continue
        built[sample.key] = sample
    nlvr2 = built["m4_release-NLVR2-0"]
    assert [m.kind for m in nlvr2.media] == ["image", "image"] and nlvr2.media[0].data[:2] == b"\xff\xd8"
    assert len(built["m4_release-MagicBrush-4757"].media) == 2  # found under the archive's extra outer folder
    video = built["m4_release-m4_instruct_video-v_00abc"]
    assert [m.frame_index for m in video.media] == [0, 1, 2, 3, 4, 6, 7, 8, 9, 11]  # linspace(0, 11, 10)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind,expected",
    [
        ("m4", {
            "m4_instruct-MagicBrush-4756": ("validation", "2 placeholder(s) in the conversation but 4 path(s)"),
            "m4_instruct-twitter_post-3": ("validation", "the first turn must be human"),
            "m4_instruct-Spot-the-Diff-9": ("missing_media", "Spot-the-Diff/images/42.png"),
        }),
        ("st", {"st_align-stage3-tvg-tvg-2": ("validation", "shareVideoGPTV")}),
    ],
)  # fmt: skip
def test_audit_finds_every_planted_defect(ray_session, tmp_path, capsys, kind, expected):
    release = tmp_path / "release"
    write_miniature(f"{kind}_release", release)
    out = tmp_path / "audit"
    assert main(["audit", str(release), "--kind", kind, "--out", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    rows = {r["key"]: r for r in map(json.loads, (out / "quarantine.jsonl").read_text().splitlines())}
    assert set(rows) == set(expected)
    for key, (reason, detail) in expected.items():
        assert rows[key]["reason"] == reason and detail in rows[key]["detail"]
        assert key in printed
    report = (out / "report" / "index.html").read_text()
    assert all(key in report for key in expected)  # the report's quarantine table names them too
    manifest = json.loads((out / "manifest.json").read_text())
    t = manifest["totals"]
    assert t["read"] == t["written"] + t["quarantined"] + t["duplicates"] and t["written"] > 0
