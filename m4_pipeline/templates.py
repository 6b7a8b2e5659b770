"""Templates as data: the named template library and the field expressions of declarative sources.

**The library.** ``recipes/templates/<group>.yaml`` maps a name to a text or a list of texts
(e.g. ``st.yaml: tvg_span_phrases: [...]``). A recipe refers to one as ``@<group>/<name>``.
When a template is a list, one entry is chosen per sample, deterministically from the sample key
(and the slot it fills), and the choice is recorded in provenance as ``<group>/<name>#<i>``.

**Field expressions.** ``{path|filter:arg|...}`` inside a template reads a field of the record
(``a.b``, ``a[0]``, ``a[-1]``) and passes it through filters. ``{{`` and ``}}`` are literal
braces. A missing field raises a :class:`~m4_pipeline.errors.SourceError` that names it;
:func:`fields_of` lists the top-level fields a template reads, so a recipe is checked against
the fields the reader actually sees before any record is built.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from .coords import Coord, Variables, hms_seconds
from .errors import SourceError
from .resources import templates_dir


class TemplateError(ValueError):
    """A template reference or expression that cannot be used (a recipe fault)."""


# --- the library --------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def library(folder: str | None = None) -> dict[str, Any]:
    """Every named template, as ``{"group/name": text or [texts]}``."""
    out: dict[str, Any] = {}
    root = Path(folder) if folder else templates_dir()
    for path in sorted(root.glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise TemplateError(f"{path}: a template file maps names to texts or lists of texts")
        for name, value in data.items():
            ok = isinstance(value, str) or (
                isinstance(value, list) and value and all(isinstance(v, str) for v in value)
            )
            if not ok:
                raise TemplateError(f"{path}: {name}: a template is a text or a non-empty list of texts")
            out[f"{path.stem}/{name}"] = value
    return out


def lookup(ref: str) -> str | list[str]:
    """``@group/name`` → its text(s); any other string is itself."""
    if not isinstance(ref, str) or not ref.startswith("@"):
        return ref
    lib = library()
    try:
        return lib[ref[1:]]
    except KeyError:
        raise TemplateError(f"unknown template {ref!r}; known: {', '.join('@' + k for k in sorted(lib))}") from None


def choose(ref: str | list[str], key: str, slot: str = "") -> tuple[str, str]:
    """(text, label) for a template or list of templates, chosen by the sample key.

    ``label`` is what provenance records: ``group/name#i`` for a library list, ``#i`` for an
    inline list, the reference for a single library text, ``""`` for a literal."""
    value = lookup(ref) if isinstance(ref, str) else ref
    name = ref[1:] if isinstance(ref, str) and ref.startswith("@") else ""
    if isinstance(value, str):
        return value, name
    if not value:
        raise TemplateError("an empty template list")
    digest = int(hashlib.sha1(f"{key}\x00{slot}".encode()).hexdigest()[:12], 16)
    i = digest % len(value)
    return value[i], f"{name}#{i}"


# --- field expressions --------------------------------------------------------------------------

_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")
_STEP = re.compile(r"\.?([^.\[\]]+)|\[(-?\d+)\]")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _drop_last(v: Any, sep: str = "-") -> str:
    text = str(v)
    if sep not in text:  # "1000" has no last component to drop: the value is not what the mapping expects
        raise ValueError(f"{v!r} has no {sep!r} to drop its last component at")
    return text.rsplit(sep, 1)[0]


def _last(v: Any, sep: str = "/") -> str:
    return str(v).rsplit(sep, 1)[-1]


def _pad(v: Any, width: str = "6") -> str:
    return str(_as_int(v)).zfill(int(width))


def _as_int(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError(f"{v!r} is not an integer")
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v)
    if isinstance(v, int):
        return v
    raise ValueError(f"{v!r} is not an integer")


def _letter(v: Any) -> str:
    i = _as_int(v)
    if not 0 <= i < len(LETTERS):
        raise ValueError(f"{v!r} is not an option index")
    return LETTERS[i]


def _strip_ext(v: Any) -> str:
    s = str(v)
    return s.rsplit(".", 1)[0] if "." in s.rsplit("/", 1)[-1] else s


def _sentence(v: Any) -> str:
    s = str(v).strip()
    return s[:1].upper() + s[1:] if s else s


FILTERS = {
    "map": None,  # handled by evaluate: a lookup in a side file the source declares
    "drop_last": _drop_last,  # "dev-850-0-0" -> "dev-850-0"
    "last": _last,  # last component after sep
    "pad": _pad,  # zero-padded integer
    "int": lambda v: str(_as_int(v)),
    "letter": _letter,  # 0 -> A
    "lower": lambda v: str(v).lower(),
    "upper": lambda v: str(v).upper(),
    "strip": lambda v: str(v).strip(),
    "rstrip": lambda v, chars=None: str(v).rstrip(chars),
    "strip_ext": _strip_ext,
    "sentence": _sentence,
    "replace": lambda v, old, new="": str(v).replace(old, new),
    "hms": lambda v: repr(hms_seconds(v)),  # "0:01:02.500" -> "62.5" (seconds)
}


def _map(value: Any, args: list[str], data: dict, where: str, path: str) -> Any:
    """``{field|map:NAME}``: the value looked up in the side file the source declares as NAME."""
    table = (data.get("_maps") or {}).get(args[0] if args else "")
    if not isinstance(table, dict):
        raise TemplateError(f"{where}: map {args} is not declared (a source's ``maps``)")
    if str(value) not in table:
        raise SourceError(f"{where}: field {path!r}: {value!r} is not in map {args[0]!r}", reason="missing_media")
    return table[str(value)]


def _resolve(data: Any, path: str, where: str) -> Any:
    value = data
    pos = 0
    for m in _STEP.finditer(path):
        if m.start() != pos:
            raise TemplateError(f"{where}: bad field path {path!r}")
        pos = m.end()
        if m.group(1) is not None:
            if not isinstance(value, dict) or m.group(1) not in value:
                raise SourceError(f"{where}: missing field {path!r}")
            value = value[m.group(1)]
        else:
            i = int(m.group(2))
            if not isinstance(value, list) or not -len(value) <= i < len(value):
                raise SourceError(f"{where}: field {path!r}: no item {i}")
            value = value[i]
    if pos != len(path):
        raise TemplateError(f"{where}: bad field path {path!r}")
    return value


def parse_expression(expr: str) -> tuple[str, list[tuple[str, list[str]]]]:
    """``path|f:a:b|g`` → (path, [(f, [a, b]), (g, [])]); unknown filters are a TemplateError."""
    path, *rest = expr.split("|")
    filters = []
    for f in rest:
        name, *args = f.split(":")
        if name not in FILTERS:
            raise TemplateError(f"unknown filter {name!r} in {{{expr}}}; filters: {', '.join(sorted(FILTERS))}")
        filters.append((name, args))
    return path.strip(), filters


def evaluate(expr: str, data: dict, where: str = "record") -> Any:
    """The value of one ``path|filters`` expression (filters make it a string)."""
    path, filters = parse_expression(expr)
    value = _resolve(data, path, where)
    for name, args in filters:
        if name == "map":
            value = _map(value, args, data, where, path)
            continue
        try:
            value = FILTERS[name](value, *args)
        except (ValueError, TypeError) as err:
            raise SourceError(f"{where}: field {path!r}: {name}: {err}") from None
    return value


def render(template: str, data: dict, where: str = "record", *, variables: Variables | None = None,
           role: str = "human") -> str:  # fmt: skip
    """``template`` with every ``{expression}`` replaced by its value as text.

    A coordinate value (:class:`~m4_pipeline.coords.Coord`: a time, span, box or tube) becomes
    its placeholder tokens for ``role`` and its numbers are appended to ``variables`` in the
    order they appear: the one way ST text and ``variables`` are made together."""

    def sub(m: re.Match) -> str:
        if m.group(0) in ("{{", "}}"):
            return m.group(0)[0]
        value = evaluate(m.group(1), data, where)
        if isinstance(value, Coord):
            if variables is None:
                raise TemplateError(f"{where}: {{{m.group(1)}}} is a coordinate, which only ST samples carry")
            return variables.place(value, role)
        if value is None or isinstance(value, (dict, list)):
            raise SourceError(f"{where}: field {m.group(1)!r} is {type(value).__name__}, not text")
        text = str(value)
        if not m.group(1).lstrip().startswith("_"):  # a record's own text, not a computed value
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise SourceError(f"{where}: field {m.group(1)!r}: not valid Unicode (a lone surrogate)") from None
            if not text.strip():  # the template around it would hide that the source text is empty
                raise SourceError(f"{where}: field {m.group(1)!r} is empty", reason="empty_text")
        return text

    return _FIELD.sub(sub, template)


def fields_of(template: str) -> set[str]:
    """The top-level field names a template reads (checked against the reader's fields)."""
    out = set()
    for m in _FIELD.finditer(template):
        if m.group(1) is not None:
            path, _ = parse_expression(m.group(1))
            out.add(re.split(r"[.\[]", path, maxsplit=1)[0])
    return out


def is_single_field(template: str) -> str | None:
    """The expression if ``template`` is exactly one ``{expression}`` (its value keeps its type)."""
    m = _FIELD.fullmatch(template.strip())
    return m.group(1) if m and m.group(1) is not None else None
