import shutil
import tempfile
from pathlib import Path

import pytest

from m4_pipeline.adapters import sources, write_miniature
from m4_pipeline.recipe import load_recipe

ROOT = Path(__file__).resolve().parent.parent
DEMO_RECIPE = ROOT / "recipes" / "demo.yaml"


@pytest.fixture(scope="session")
def ray_session():
    """One real local Ray for the whole session, in a temp dir of our own."""
    from m4_pipeline.executor import init_ray

    temp = tempfile.mkdtemp(prefix="/tmp/m4ray-")
    ray = init_ray(num_cpus=2, temp_dir=temp)
    yield ray
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="session")
def miniatures(tmp_path_factory) -> Path:
    """Every source's miniature, written once: <root>/<source name>/."""
    root = tmp_path_factory.mktemp("sources")
    for name in sources():
        write_miniature(name, root / name)
    return root


@pytest.fixture(scope="session")
def demo_recipe():
    return load_recipe(DEMO_RECIPE)


@pytest.fixture(scope="session")
def demo_build(ray_session, miniatures, demo_recipe, tmp_path_factory):
    from m4_pipeline.executor import run_build

    out = tmp_path_factory.mktemp("demo_shards")
    manifest = run_build(demo_recipe, miniatures, out, progress=False)
    return out, manifest
