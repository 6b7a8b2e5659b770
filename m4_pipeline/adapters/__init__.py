"""The registry of sources, filled by declaration.

A Python adapter registers itself when its module is imported (a subclass of
:class:`~.base.Adapter` with a ``name``); every module of this package, subpackages included, is
imported here. A declarative source registers itself from its YAML file in
``recipes/sources/`` (or a folder on ``M4_SOURCE_PATH``). Nothing else lists the sources.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import pkgutil
from pathlib import Path
from typing import Any

import yaml

from ..errors import BuildError
from ..resources import source_dirs
from . import base
from .base import REGISTRY, Adapter, MediaError, RawRecord, SourceError, SourceParams, get_adapter, sources
from .declarative import Declarative, DeclarativeParams

ADAPTERS = REGISTRY  # the name older code and tests use


def _import_modules() -> None:
    for info in pkgutil.walk_packages(__path__, prefix=f"{__name__}."):
        importlib.import_module(info.name)


def declare(spec: dict, origin: str, *, register: bool = True) -> type[Declarative]:
    """A declarative source class from its YAML mapping: its keys become the Params defaults.
    ``register=False`` builds the class without adding it to the registry (to try a declaration)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise BuildError(f"{origin}: a source declaration is a mapping with a 'name'")
    spec = dict(spec)
    name = spec.pop("name")
    known = {f.name for f in dataclasses.fields(DeclarativeParams)}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise BuildError(f"{origin}: unknown key {unknown[0]!r}; valid keys: name, {', '.join(sorted(known))}")
    fields: list[Any] = [
        (k, Any, dataclasses.field(default_factory=lambda v=v: copy.deepcopy(v))) for k, v in spec.items()
    ]
    params = dataclasses.make_dataclass(f"{name.title().replace('_', '')}Params", fields, bases=(DeclarativeParams,))
    attrs = {
        "name": name,
        "Params": params,
        "family": spec.get("family", "m4"),
        "description": spec.get("description", ""),
        "declared": {"path": origin},
        "abstract": False,
        "__module__": Declarative.__module__,
    }
    previous = REGISTRY.get(name)
    cls = type(f"Declared_{name}", (Declarative,), attrs)
    if not register:
        REGISTRY.pop(name)
        if previous is not None:
            REGISTRY[name] = previous
    return cls


_DECLARED: set[str] = set()


def _load_declared() -> None:
    """Register every declaration not registered yet (also called when a name is not found)."""
    for folder in source_dirs():
        for path in sorted(Path(folder).glob("*.yaml")):
            if str(path.resolve()) in _DECLARED:
                continue
            _DECLARED.add(str(path.resolve()))
            try:
                spec = yaml.safe_load(path.read_text())
            except yaml.YAMLError as err:
                raise BuildError(f"{path}: not valid YAML: {err}") from None
            declare(spec, str(path))


def write_miniature(name: str, root) -> None:
    """Write the miniature copy of a source in its published layout."""
    get_adapter(name).write_miniature(Path(root))


_import_modules()
_load_declared()
base._RESCAN.append(_load_declared)

__all__ = ["ADAPTERS", "REGISTRY", "Adapter", "MediaError", "RawRecord", "SourceError", "SourceParams", "declare",
           "get_adapter", "sources", "write_miniature"]  # fmt: skip
