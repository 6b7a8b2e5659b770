"""Kit extension: streaming a tar.gz while reading only the members a caller selects."""

import io
import tarfile

import pytest

from m4_pipeline.paths import AnnotationFileError, SourceRoot
from m4_pipeline.readers import iter_tar_members


def test_tar_gz_members_are_streamed_and_read_only_when_selected(tmp_path):
    with tarfile.open(tmp_path / "chunk_0.tar.gz", "w:gz") as tf:
        for name in ("./v1/c01_0002.jpeg", "./v1/c01_0001.jpeg", "./v2/c01_0001.jpeg"):
            data = name.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    src = SourceRoot(tmp_path)
    everything = list(iter_tar_members(src, "chunk_0.tar.gz"))
    assert [n for n, _ in everything] == ["./v1/c01_0002.jpeg", "./v1/c01_0001.jpeg", "./v2/c01_0001.jpeg"]
    assert all(data == name.encode() for name, data in everything)
    picked = dict(iter_tar_members(src, "chunk_0.tar.gz", read=lambda n: n.startswith("./v2/")))
    assert picked["./v1/c01_0002.jpeg"] is None and picked["./v1/c01_0001.jpeg"] is None
    assert picked["./v2/c01_0001.jpeg"] == b"./v2/c01_0001.jpeg"
    (tmp_path / "bad.tar.gz").write_bytes(b"\x1f\x8b\x08\x00not really gzip")
    with pytest.raises(AnnotationFileError):
        list(iter_tar_members(src, "bad.tar.gz"))


def test_tar_stream_reads_forward_and_restarts_only_when_asked_backwards(tmp_path):
    from m4_pipeline.errors import MediaError
    from m4_pipeline.readers import TarStream

    with tarfile.open(tmp_path / "c.tar.gz", "w:gz") as tf:
        for i in range(6):
            info = tarfile.TarInfo(f"./v{i}/f.jpg")
            info.size = 1
            tf.addfile(info, io.BytesIO(bytes([i])))
    stream = TarStream(SourceRoot(tmp_path), "c.tar.gz")
    assert stream.fetch(["v1/f.jpg"]) == {"v1/f.jpg": b"\x01"}
    assert stream.fetch(["v3/f.jpg", "v4/f.jpg"]) == {"v3/f.jpg": b"\x03", "v4/f.jpg": b"\x04"}
    assert stream.restarts == 0  # forward requests share one pass
    assert stream.fetch(["v0/f.jpg"]) == {"v0/f.jpg": b"\x00"} and stream.restarts == 1
    with pytest.raises(MediaError) as err:
        stream.fetch(["v9/f.jpg"])
    assert err.value.reason == "missing_media"
