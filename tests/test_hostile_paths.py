"""SourceRoot's read log (the files a unit read, fingerprinted for --resume) and confinement."""

import pytest

from m4_pipeline.paths import AnnotationFileError, SourceRoot, UnsafePathError


def test_recording_notes_reads_not_probes(tmp_path):
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "a.json").write_text("[]")
    (tmp_path / "img.jpg").write_bytes(b"x")
    (tmp_path / "frames").mkdir()
    src = SourceRoot(tmp_path)
    src.path("img.jpg")  # outside a recording: nothing kept
    with src.recording() as reads:
        assert src.is_file("img.jpg") and src.exists("ann/a.json") and src.glob("*.jpg") == ["img.jpg"]
        assert reads == {}
        src.annotation("ann/a.json")
        src.file("img.jpg")
        src.folder("frames")
        with src.recording() as inner:
            src.read_bytes("img.jpg")
        assert inner == {"img.jpg": "media"}
    assert reads == {"ann/a.json": "annotation", "img.jpg": "media", "frames": "media"}
    assert src._reads is None


def test_recording_keeps_refusals_out(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    root = tmp_path / "root"
    root.mkdir()
    (root / "link.txt").symlink_to(outside)
    src = SourceRoot(root)
    with src.recording() as reads:
        for rel in ("../outside.txt", str(outside), "link.txt"):
            with pytest.raises(UnsafePathError):
                src.file(rel)
        with pytest.raises(AnnotationFileError, match="link.txt"):
            src.annotation("link.txt")
    assert reads == {}
