"""A user adds a source from a sample file with ``m4 new-source`` and builds it, editing no other file."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from m4_pipeline.adapters import declare
from m4_pipeline.errors import BuildError

SAMPLE = [
    {"qid": 7, "image": "imgs/a.jpg", "question": "What colour is the box?", "answer": "red"},
    {"qid": "8", "image": "imgs/b.jpg", "question": "How many shapes?", "answer": "three"},
    {"qid": 9, "image": "imgs/c.png", "question": "Is there a circle?", "answer": "yes"},
]


def m4(*args, env):
    return subprocess.run([sys.executable, "-m", "m4_pipeline.cli", *args], capture_output=True, text=True, env=env)


@pytest.mark.slow
def test_new_source_from_a_sample_file_builds_and_validates(tmp_path, ray_session):
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in SAMPLE))
    env = {**os.environ, "M4_SOURCE_PATH": str(tmp_path / "decl"), "RAY_ADDRESS": ""}
    done = m4("new-source", "shapes_vqa", "--family", "m4", "--format", "jsonl", "--sample",
              str(tmp_path / "train.jsonl"), "--dir", str(tmp_path / "decl"), "--recipe", str(tmp_path / "recipe.yaml"),
              env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    spec = yaml.safe_load((tmp_path / "decl" / "shapes_vqa.yaml").read_text())
    assert spec["id"] == "{qid}" and spec["images"] == ["{image}"] and spec["gpt"] == "{answer}"
    assert spec["miniature"]["files"]["train.jsonl"] == SAMPLE  # the sample's real fields
    for args in (("miniature", str(tmp_path / "recipe.yaml"), "--out", str(tmp_path / "src")),
                 ("build", str(tmp_path / "recipe.yaml"), "--sources", str(tmp_path / "src"), "--out",
                  str(tmp_path / "shards"), "-q", "--num-cpus", "1"),
                 ("validate", str(tmp_path / "shards"))):  # fmt: skip
        done = m4(*args, env=env)
        assert done.returncode == 0, f"{args[0]}: {done.stdout}\n{done.stderr}"
    assert "3 samples in 1 shard(s): 0 problem(s)" in done.stdout


def test_a_misspelt_field_stops_the_build_naming_it(tmp_path):
    cls = declare(
        {"name": "typo_vqa", "reader": "jsonl", "files": ["train.jsonl"], "images": ["{image}"],
         "human": "{_images}\n{questoin}", "gpt": "{answer}", "miniature": {"files": {"train.jsonl": SAMPLE}}},
        "test",
        register=False,
    )  # fmt: skip
    cls.write_miniature(tmp_path)
    with pytest.raises(BuildError, match=r"reads field\(s\) \['questoin'\].*'question'"):
        cls(tmp_path).preflight()
