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
