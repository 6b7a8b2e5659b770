"""Declarative recipes: which sources to read, through which adapter, with which parameters.

A recipe is a YAML file, validated on load; every error names the file and the bad key::

    name: demo
    version: "1"
    output: {shard_max_samples: 1000, shard_max_bytes: 256MB}
    dedup: {exact: true}
    media: frames              # a video slot as frames | clip | reference (default for every source)
    max_side: 384              # video frames and clips scaled to this longer side (0: as decoded)
    sources:
      - name: nlvr2            # the source's name in provenance and statistics
        adapter: nlvr2         # a name from ``m4 sources``
        path: nlvr2            # relative to --sources
        sampling: first:100    # all | first:N | random:N
        seed: 0
        params: {...}          # the adapter's own parameters (see its Params class)
        media: reference       # overrides the recipe's media / max_side for this source
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import BuildError


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the file and the key."""


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?B?)\s*$", re.I)
_UNITS = {"": 1, "B": 1, "K": 1e3, "KB": 1e3, "M": 1e6, "MB": 1e6, "G": 1e9, "GB": 1e9, "T": 1e12, "TB": 1e12}


def parse_size(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise RecipeError(f"{where}: {value!r} is not a size (e.g. 256MB, 1GB, 1000000)")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


@dataclass(frozen=True)
class Sampling:
    """Which of a source's records to use: all, the first N, or N chosen at random (seeded)."""

    mode: str = "all"
    n: int = 0
    seed: int = 0

    @classmethod
    def parse(cls, text: Any, seed: int, where: str) -> Sampling:
        text = "all" if text is None else str(text).strip()
        if text == "all":
            return cls("all", 0, seed)
        mode, _, num = text.partition(":")
        if mode not in ("first", "random") or not num.isdigit():
            raise RecipeError(f"{where}: sampling {text!r} is not one of all, first:N, random:N")
        return cls(mode, int(num), seed)

    def select(self, items: list) -> list:
        """The chosen items, in their original order."""
        if self.mode == "all" or self.n >= len(items):
            return list(items)
        if self.mode == "first":
            return list(items[: self.n])
        chosen = sorted(random.Random(self.seed).sample(range(len(items)), self.n))
        return [items[i] for i in chosen]


@dataclass(frozen=True)
class SourceSpec:
    name: str
    adapter: str
    path: str
    sampling: Sampling
    params: Any  # the adapter's Params dataclass instance
    symlinks: str = "refuse"  # refuse | inside: follow symlinks that stay inside the source root
    max_quarantine_fraction: float = 0.5  # past it the build fails, naming the dominant reason
    media: str = "frames"  # a video slot as frames | clip (one H.264 of the sampled frames) | reference (no pixels)
    max_side: int = 384  # video frames and clips scaled down to this longer side (0: as decoded)


@dataclass(frozen=True)
class OutputSpec:
    shard_max_samples: int = 1000
    shard_max_bytes: int = 256_000_000
    records_per_unit: int = 32  # records per parallel work unit


@dataclass(frozen=True)
class DedupSpec:
    """``exact``: drop samples whose ``exact_key`` (text, media or both) repeats. ``near``:
    near-duplicate images / videos / text (``near_params``: the fields of
    :class:`m4_pipeline.dedup.NearDupConfig`). ``decontaminate``: benchmark name -> its folder
    (relative to --sources) whose items training samples must not share."""

    exact: bool = True
    exact_key: str = "both"
    near: bool = False
    near_params: dict = field(default_factory=dict)
    decontaminate: dict = field(default_factory=dict)
    decontam_params: dict = field(default_factory=dict)

    @property
    def needs_signatures(self) -> bool:
        return self.near or bool(self.decontaminate)

    def near_config(self):
        from .dedup import NearDupConfig

        return NearDupConfig(**self.near_params)

    def decontam_config(self):
        from .dedup import DecontamConfig

        return DecontamConfig(**self.decontam_params)


@dataclass(frozen=True)
class Recipe:
    name: str
    version: str
    sources: list[SourceSpec]
    output: OutputSpec = field(default_factory=OutputSpec)
    dedup: DedupSpec = field(default_factory=DedupSpec)
    path: str = ""

    @property
    def sha256(self) -> str:
        """A hash of everything that shapes the output: not where the recipe file lives, nor how
        the work is cut into units (``records_per_unit``), which changes no output byte."""
        fields = dataclasses.asdict(self)
        fields.pop("path")
        fields["output"].pop("records_per_unit")
        text = json.dumps(fields, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def source(self, name: str) -> SourceSpec:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(name)


_TOP_KEYS = {"name", "version", "description", "output", "dedup", "sources", "media", "max_side"}
_SOURCE_KEYS = {"name", "adapter", "path", "sampling", "seed", "params", "symlinks", "max_quarantine_fraction",
                "media", "max_side"}  # fmt: skip
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def _safe_name(value: Any, where: str) -> str:
    """Names end up in file names (shards, units): letters, digits, ``_ . -``, no leading dot."""
    text = str(value)
    if not SAFE_NAME.match(text) or ".." in text:
        raise RecipeError(f"{where}: {text!r} is not a safe name (letters, digits, '_', '.', '-'; 1-128 characters)")
    return text


def _check_keys(obj: Any, allowed: set[str], where: str) -> dict:
    if not isinstance(obj, dict):
        raise RecipeError(f"{where}: expected a mapping, got {type(obj).__name__}")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise RecipeError(f"{where}: unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(allowed))}")
    return obj


def build_params(params_cls: type, given: Any, where: str) -> Any:
    """Instantiate an adapter's Params dataclass, naming any unknown or ill-typed key."""
    given = {} if given is None else given
    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    _check_keys(given, set(fields), where)
    for k, v in given.items():
        f = fields[k]
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = None
        if default is not None and v is not None and not _same_kind(default, v):
            raise RecipeError(f"{where}.{k}: expected {type(default).__name__}, got {v!r}")
    try:
        return params_cls(**given)
    except (TypeError, ValueError, BuildError) as err:
        raise RecipeError(f"{where}: {err}") from err


def _same_kind(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, (int, float)):
        return isinstance(value, (int, float))
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def _read_yaml(path: Path, what: str) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError as err:
        raise RecipeError(f"{what} {path} not found") from err
    except yaml.YAMLError as err:
        raise RecipeError(f"{what} {path}: not valid YAML: {err}") from err


def load_recipe(path: str | Path) -> Recipe:
    """A recipe file (or a shipped recipe by name, e.g. ``demo``). ``include: [part.yaml, ...]``
    (paths relative to the recipe) prepends the ``sources`` of other files: stage recipes are
    composed of per-family parts."""
    from .resources import recipe_path

    path = recipe_path(path)
    raw = _read_yaml(path, "recipe")
    if isinstance(raw, dict) and "include" in raw:
        raw = dict(raw)
        includes = raw.pop("include")
        if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
            raise RecipeError(f"{path}: include: expected a list of file names")
        sources = []
        for rel in includes:
            part = _read_yaml(path.parent / rel, f"{path}: included file")
            if not isinstance(part, dict) or not isinstance(part.get("sources"), list):
                raise RecipeError(f"{path}: included file {rel} must hold a 'sources' list")
            sources += part["sources"]
        raw["sources"] = sources + list(raw.get("sources") or [])
    return parse_recipe(raw, where=str(path))


def _parse_dedup(raw: Any, where: str) -> DedupSpec:
    from .dedup import EXACT_KEYS, DecontamConfig, NearDupConfig
    from .dedup.evalsets import EVALSETS

    raw = _check_keys(raw, {f.name for f in dataclasses.fields(DedupSpec)}, where)
    if raw.get("exact_key", "both") not in EXACT_KEYS:
        raise RecipeError(f"{where}.exact_key: {raw['exact_key']!r} is not one of {', '.join(sorted(EXACT_KEYS))}")
    for name in raw.get("decontaminate") or {}:
        if name not in EVALSETS:
            raise RecipeError(
                f"{where}.decontaminate: unknown benchmark {name!r}; valid: {', '.join(sorted(EVALSETS))}"
            )
    spec = DedupSpec(**raw)
    for key, cls in (("near_params", NearDupConfig), ("decontam_params", DecontamConfig)):
        try:
            build_params(cls, getattr(spec, key), f"{where}.{key}")
        except RecipeError:
            raise
        except (TypeError, ValueError) as err:
            raise RecipeError(f"{where}.{key}: {err}") from err
    return spec


def _media(raw: dict, default: tuple[str, int], where: str) -> tuple[str, int]:
    """How video slots are stored (``media``) and the longer side frames are scaled to
    (``max_side``): set for the whole recipe, or for one source."""
    from .adapters.base import MEDIA_MODES

    media, max_side = raw.get("media", default[0]), raw.get("max_side", default[1])
    if media not in MEDIA_MODES:
        raise RecipeError(f"{where}.media: {media!r} is not one of {', '.join(MEDIA_MODES)}")
    if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 0:
        raise RecipeError(f"{where}.max_side: expected a non-negative integer, got {max_side!r}")
    return media, max_side


def parse_recipe(raw: Any, where: str = "recipe") -> Recipe:
    from .adapters import get_adapter  # the registry; imported here to keep recipe loading light
    from .adapters.base import DEFAULT_MAX_SIDE, MEDIA_MODES

    raw = _check_keys(raw, _TOP_KEYS, where)
    for required in ("name", "sources"):
        if required not in raw:
            raise RecipeError(f"{where}: missing key {required!r}")
    out_raw = _check_keys(raw.get("output") or {}, {f.name for f in dataclasses.fields(OutputSpec)}, f"{where}: output")
    output = OutputSpec(
        shard_max_samples=int(out_raw.get("shard_max_samples", OutputSpec.shard_max_samples)),
        shard_max_bytes=parse_size(
            out_raw.get("shard_max_bytes", OutputSpec.shard_max_bytes), f"{where}: output.shard_max_bytes"
        ),
        records_per_unit=int(out_raw.get("records_per_unit", OutputSpec.records_per_unit)),
    )
    if output.shard_max_samples < 1 or output.shard_max_bytes < 1 or output.records_per_unit < 1:
        raise RecipeError(f"{where}: output: limits must be positive")
    dedup = _parse_dedup(raw.get("dedup") or {}, f"{where}: dedup")
    default_media, default_side = _media(raw, (MEDIA_MODES[0], DEFAULT_MAX_SIDE), where)
    if not isinstance(raw["sources"], list) or not raw["sources"]:
        raise RecipeError(f"{where}: 'sources' must be a non-empty list")
    sources, seen = [], set()
    for i, src in enumerate(raw["sources"]):
        at = f"{where}: sources[{i}]"
        src = _check_keys(src, _SOURCE_KEYS, at)
        if "adapter" not in src:
            raise RecipeError(f"{at}: missing key 'adapter'")
        try:
            adapter_cls = get_adapter(src["adapter"])
        except KeyError as err:
            raise RecipeError(f"{at}.adapter: {err.args[0]}") from err
        name = _safe_name(src.get("name", src["adapter"]), f"{at}.name")
        if name in seen:
            raise RecipeError(f"{at}.name: source name {name!r} is used twice")
        seen.add(name)
        seed = src.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise RecipeError(f"{at}.seed: expected an integer, got {seed!r}")
        symlinks = src.get("symlinks", "refuse")
        if symlinks not in ("refuse", "inside"):
            raise RecipeError(f"{at}.symlinks: {symlinks!r} is not one of refuse, inside")
        fraction = src.get("max_quarantine_fraction", 0.5)
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
            raise RecipeError(f"{at}.max_quarantine_fraction: expected a number in [0, 1], got {fraction!r}")
        media, max_side = _media(src, (default_media, default_side), at)
        path = str(src.get("path", name))
        if path.startswith("/") or ".." in Path(path).parts:
            raise RecipeError(f"{at}.path: {path!r} must be relative to --sources, without '..'")
        sources.append(
            SourceSpec(
                name=name,
                adapter=src["adapter"],
                path=path,
                sampling=Sampling.parse(src.get("sampling"), seed, f"{at}.sampling"),
                params=build_params(adapter_cls.Params, src.get("params"), f"{at}.params"),
                symlinks=symlinks,
                max_quarantine_fraction=float(fraction),
                media=media,
                max_side=max_side,
            )
        )
    return Recipe(
        name=_safe_name(raw["name"], f"{where}: name"),
        version=str(raw.get("version", "0")),
        sources=sources,
        output=output,
        dedup=dedup,
        path=where,
    )
