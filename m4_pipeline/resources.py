"""Where the shipped data lives: recipes, declarative sources, the template library, manifests.

In a checkout these are the top-level ``recipes/`` and ``manifests/`` folders; a wheel carries
the same folders as ``m4_pipeline/recipes`` and ``m4_pipeline/manifests`` (see pyproject's
``package-dir``). Extra declarative sources can be added with ``M4_SOURCE_PATH`` (folders,
separated by ``:``).
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _folder(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"the shipped folder {name!r} is missing (looked in {_PACKAGE} and {_PACKAGE.parent})")


def recipes_dir() -> Path:
    return _folder("recipes")


def manifests_dir() -> Path:
    return _folder("manifests")


def templates_dir() -> Path:
    return recipes_dir() / "templates"


def source_dirs() -> list[Path]:
    """Folders of declarative source definitions: the shipped one, then ``M4_SOURCE_PATH``."""
    dirs = [recipes_dir() / "sources"]
    dirs += [Path(p) for p in os.environ.get("M4_SOURCE_PATH", "").split(os.pathsep) if p]
    return [d for d in dirs if d.is_dir()]


def recipe_path(name_or_path: str | os.PathLike) -> Path:
    """A recipe file: a path as given, else a shipped recipe by name (``demo`` → recipes/demo.yaml)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    shipped = recipes_dir() / (p.name if p.suffix else f"{p.name}.yaml")
    return shipped if shipped.is_file() else p
