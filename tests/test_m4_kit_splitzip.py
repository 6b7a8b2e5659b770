"""Kit extension: split zip archives (``zip -s``) read in place, checked against InfoZip."""

import os
import shutil
import subprocess
import zipfile

import pytest

from m4_pipeline.errors import MediaError
from m4_pipeline.paths import SourceRoot
from m4_pipeline.readers import ArchiveSet
from m4_pipeline.readers.splitzip import SplitZip, split_segments, write_split_zip

MEMBERS = {f"dreamsim/{i:03d}_{k}.png": os.urandom(20000 + 37 * i) for i in range(4) for k in ("ref", "0")}


def test_split_zip_members_span_segments_and_read_back(tmp_path):
    paths = write_split_zip(tmp_path, "dreamsim_split", MEMBERS, segment_size=50000)
    assert [p.name for p in paths][:2] == ["dreamsim_split.z01", "dreamsim_split.z02"] and len(paths) >= 4
    assert paths[-1].name == "dreamsim_split.zip"
    assert paths[0].read_bytes()[:4] == b"PK\x07\x08"  # the spanning signature
    src = SourceRoot(tmp_path)
    assert split_segments(src, "dreamsim_split.zip") == [p.name for p in paths]
    assert split_segments(src, "other.zip") is None
    archives = ArchiveSet(src, src.glob("*.zip"))  # the release adapter's listing finds the last segment
    assert sorted(archives.names()) == sorted(MEMBERS)
    assert all(archives.read(name) == data for name, data in MEMBERS.items())
    assert archives.read("000_ref.png") == MEMBERS["dreamsim/000_ref.png"]  # without the outer folder


def test_a_corrupted_member_is_bad_media(tmp_path):
    paths = write_split_zip(tmp_path, "x", {"a.png": b"A" * 5000, "b.png": b"B" * 5000}, segment_size=4000)
    first = bytearray(paths[0].read_bytes())
    first[100] ^= 0xFF  # inside a.png's data
    paths[0].write_bytes(bytes(first))
    archives = ArchiveSet(SourceRoot(tmp_path), ["x.zip"])
    with pytest.raises(MediaError, match="CRC-32"):
        archives.read("a.png")
    assert archives.read("b.png") == b"B" * 5000


@pytest.mark.skipif(shutil.which("zip") is None, reason="InfoZip's zip is not installed")
def test_infozip_split_archives_read_and_ours_merge(tmp_path):
    folder = tmp_path / "files"
    for name, data in MEMBERS.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    real = tmp_path / "real"
    real.mkdir()
    for stem, force64 in (("dreamsim_split", []), ("zip64_split", ["-fz"])):  # -fz: zip64 records
        subprocess.run(["zip", "-q", "-r", "-s", "64k", *force64, str(real / f"{stem}.zip"), "dreamsim"], cwd=folder,
                       check=True)  # fmt: skip
        src = SourceRoot(real)
        archive = SplitZip(src, split_segments(src, f"{stem}.zip"))
        assert {n: archive.read(n, 1 << 30) for n in archive.namelist()} == MEMBERS, stem
    ours = tmp_path / "ours"
    ours.mkdir()
    write_split_zip(ours, "dreamsim_split", MEMBERS, segment_size=65536)
    subprocess.run(["zip", "-q", "-s", "0", str(ours / "dreamsim_split.zip"), "--out", str(ours / "merged.zip")],
                   check=True)  # fmt: skip
    with zipfile.ZipFile(ours / "merged.zip") as zf:
        assert {n: zf.read(n) for n in zf.namelist()} == MEMBERS
