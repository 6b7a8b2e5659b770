"""The static HTML report: self-contained, renders in headless Chromium without errors, shows samples.

The browser checks drive the Chromium binary directly (no Selenium/DevTools client needed):
``--screenshot`` for the picture, ``--dump-dom`` for the DOM after the page's script ran, and
``--enable-logging=stderr`` so every console message (errors included) lands on stderr as a
``:CONSOLE`` line. The page also records uncaught errors on ``<html data-js-errors>`` and marks
``<html data-ready>`` when its script finished, so a script that never ran is caught too.
"""

import io
import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from m4_pipeline.audit import compare, compute_stats, load_targets
from m4_pipeline.audit.browser import BrowserOptions
from m4_pipeline.audit.hist import Histogram, int_edges
from m4_pipeline.audit.report import write_report
from m4_pipeline.audit.svg import counter_svg, histogram_svg
from m4_pipeline.sample import Media, Provenance, Sample, Turn
from m4_pipeline.writer import sample_members, write_tar

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # nothing may come from the network
    "--enable-logging=stderr",
    "--v=0",
]
_REMOTE = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//|url\(\s*["']?(?:https?:)?//|@import""", re.I)
_CARD = re.compile(r'<article class="card"[^>]*>')


def _jpeg(color: tuple[int, int, int], size=(64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG")
    return buf.getvalue()


def _samples() -> list[Sample]:
    nlvr = Sample(
        key="nlvr2-0",
        family="m4",
        conversations=[Turn("human", "<image>\n<image>\nIs it <b>true</b>?"), Turn("gpt", "True")],
        record={
            "sample_id": 0,
            "image": ["a.jpg", "b.jpg"],
            "choice_list": None,
            "metadata": {"dataset": "NLVR2", "question_type": "multi-choice"},
        },  # fmt: skip
        media=[Media("image", k, data=_jpeg((200, 40 * k, 0)), size=[64, 48]) for k in range(2)],
        provenance=Provenance(dataset="nlvr2", source_file="f", locator="0"),
    )
    variables = {
        "temporal_input_locations": [],
        "temporal_output_locations": [0.1, 0.3, 0.101, 0.202],
        "spatial_height_input_locations": [],
        "spatial_height_output_locations": [0.2, 0.6, 0.25, 0.65],
        "spatial_width_input_locations": [],
        "spatial_width_output_locations": [0.3, 0.5, 0.35, 0.55],
    }
    box = "[<WIDTH-OUTPUT><HEIGHT-OUTPUT><WIDTH-OUTPUT><HEIGHT-OUTPUT>]"
    st = Sample(
        key="vidstg-0",
        family="st",
        conversations=[
            Turn("human", "<video>\nWhere is the box?"),
            Turn("gpt", f"During {{<TEMP-OUTPUT><TEMP-OUTPUT>}}. Box: <TEMP-OUTPUT>:{box}, <TEMP-OUTPUT>:{box}"),
        ],
        record={"id": "0", "video": "v.mp4", "meta": {"split": [0, 99]}, "variables": variables},
        media=[
            Media("frame", 0, data=_jpeg((0, 0, 2 * k)), frame_index=k, timestamp=k / 30, size=[64, 48])
            for k in range(100)
        ],
        provenance=Provenance(dataset="vidstg", source_file="f", locator="0"),
    )
    return [nlvr, st]


def test_svg_charts_are_well_formed():
    h = Histogram(int_edges(8))
    for v in (1, 2, 2, 9):
        h.add(v)
    for svg in (histogram_svg(h, title="a <b>"), histogram_svg(Histogram(int_edges(4)), title="empty")):
        ET.fromstring(svg)
    ET.fromstring(counter_svg({"x & y": 3, "z": 1}, title="t"))
    ET.fromstring(counter_svg({}, title="none"))


def test_report_on_small_shard(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    members = [m for s in _samples() for m in sample_members(s)]
    write_tar(shards / "t-000000.tar", members)
    stats = compute_stats(shards)
    path = write_report(shards, tmp_path / "report", stats, compare(stats, load_targets(), scale=1e-4))
    page = path.read_text(encoding="utf-8")
    assert len(_CARD.findall(page)) == 2
    assert "Is it &lt;b&gt;true&lt;/b&gt;?" in page  # conversation text is escaped
    assert "t=0.101" in page and "&lt;TEMP-010&gt;" in page  # value inline, LAPE bin in the tooltip
    assert page.count('class="box"') >= 2  # tube boxes drawn on the frames at t=0.101 and 0.202
    assert "8 of 100 media shown" in page
    assert not _REMOTE.search(page)


def _chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_demo_report_in_headless_chromium(demo_build, tmp_path):
    out, _ = demo_build
    stats = compute_stats(out)
    rows = compare(stats, load_targets(), scale=12 / 86_400)
    path = write_report(out, tmp_path / "report", stats, rows, browser=BrowserOptions(samples_per_dataset=4))
    page = path.read_text(encoding="utf-8")
    assert not _REMOTE.search(page), "the report must not load anything from the network"
    assert path.stat().st_size < 3 * 2**20, "thumbnails should keep the report small"
    assert len(_CARD.findall(page)) == 20  # 4 samples x 5 datasets
    for section in ("overview", "composition", "distributions", "comparison", "drops", "samples"):
        assert f'<section id="{section}">' in page
    if not CHROMIUM.exists():
        pytest.skip("headless check needs /usr/bin/chromium (apt-get install chromium)")
    url = path.resolve().as_uri()

    shot = tmp_path / "report.png"
    run = _chromium(tmp_path / "p1", f"--screenshot={shot}", "--window-size=1280,2000", url)
    assert run.returncode == 0, run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    img = Image.open(shot).convert("RGB")
    assert img.size == (1280, 2000)
    colors = img.getcolors(maxcolors=1 << 20)
    assert colors is not None and len(colors) > 200, "screenshot looks blank"
    background = max(colors)[0] / (img.width * img.height)
    assert background < 0.9, f"screenshot is {background:.0%} one colour"

    run = _chromium(tmp_path / "p2", "--dump-dom", url + "#dataset=NLVR2")
    assert run.returncode == 0, run.stderr[-2000:]
    dom = run.stdout
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    root = re.search(r"<html[^>]*>", dom).group(0)
    assert 'data-ready="1"' in root and "data-js-errors" not in root, root
    cards = _CARD.findall(dom)
    visible = [c for c in cards if "hidden" not in c]
    assert len(cards) == 20 and len(visible) == 4, "the dataset filter from the URL should leave NLVR2's 4 cards"
    assert all('data-dataset="NLVR2"' in c for c in visible)
    assert 'id="f-count">4 of 20 samples' in dom
    if os.environ.get("M4_REPORT_SCREENSHOT"):  # keep the picture for a human look
        shutil.copyfile(shot, os.environ["M4_REPORT_SCREENSHOT"])
