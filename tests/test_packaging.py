"""The wheel carries the recipes, declarations, templates and targets, so an installed m4 finds them."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_wheel_ships_recipes_templates_sources_and_manifests(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True)  # fmt: skip
    [wheel] = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"m4_pipeline/{p.relative_to(ROOT).as_posix()}" for d in ("recipes", "manifests")
               for p in (ROOT / d).rglob("*.yaml")}  # fmt: skip
    assert shipped and shipped <= names, sorted(shipped - names)[:5]
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)  # fmt: skip
    probe = (
        "from m4_pipeline.recipe import load_recipe; from m4_pipeline.adapters import sources; "
        "import m4_pipeline.resources as r; print(r.recipes_dir()); "
        "print(load_recipe('demo').name, len(sources()))"
    )
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(target)},
                         capture_output=True, text=True, check=True).stdout.split("\n")  # fmt: skip
    assert out[0] == str(target / "m4_pipeline" / "recipes") and out[1].startswith("demo ")
