"""Typed access to annotation fields: every bad value becomes a quarantine reason naming the field.

Real annotation files hold ints where strings were documented, strings where numbers were,
``NaN`` frame ids, empty sentences and lone UTF-16 surrogates. Adapters read fields through these
helpers so that each such value is an ``invalid_annotation`` (or ``empty_text``) that names the
field and the record, never a raw ``TypeError`` deep in the code.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import SourceError

_MISSING = object()


def _where(where: str, name: str) -> str:
    return f"{where}: field {name!r}" if where else f"field {name!r}"


def need(obj: Any, name: str, where: str = "", default: Any = _MISSING) -> Any:
    if not isinstance(obj, dict):
        raise SourceError(f"{where}: expected an object, got {type(obj).__name__}")
    if name not in obj or obj[name] is None:
        if default is not _MISSING:
            return default
        raise SourceError(f"{_where(where, name)} is missing")
    return obj[name]


def check_text(value: Any, what: str, *, allow_empty: bool = False) -> str:
    """A string that is valid Unicode (no lone surrogates) and, unless allowed, not blank."""
    if not isinstance(value, str):
        raise SourceError(f"{what}: expected text, got {type(value).__name__} {value!r:.60}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise SourceError(f"{what}: not valid Unicode (a lone surrogate)") from None
    if not allow_empty and not value.strip():
        raise SourceError(f"{what}: empty text", reason="empty_text")
    return value


def text(obj: Any, name: str, where: str = "", *, allow_empty: bool = False, default: Any = _MISSING) -> str:
    value = need(obj, name, where, default)
    if value is default and default is not _MISSING:
        return value
    return check_text(value, _where(where, name), allow_empty=allow_empty)


def ident(obj: Any, name: str, where: str = "") -> str:
    """An id: a string or an integer (files mix them), as text."""
    value = need(obj, name, where)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise SourceError(f"{_where(where, name)}: expected an id (text or integer), got {value!r:.60}")
    return check_text(str(value), _where(where, name))


def number(obj: Any, name: str, where: str = "", *, lo: float | None = None, hi: float | None = None,
           default: Any = _MISSING) -> float:  # fmt: skip
    """A finite number (numeric strings from CSV cells accepted) inside [lo, hi]."""
    value = need(obj, name, where, default)
    if value is default and default is not _MISSING:
        return value
    return check_number(value, _where(where, name), lo=lo, hi=hi)


def check_number(value: Any, what: str, *, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise SourceError(f"{what}: expected a number, got {value!r:.60}")
    try:
        v = float(value)
    except ValueError:
        raise SourceError(f"{what}: expected a number, got {value!r:.60}") from None
    if not math.isfinite(v):
        raise SourceError(f"{what}: {value!r} is not finite")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise SourceError(f"{what}: {value!r} is outside [{lo}, {hi}]")
    return v


def integer(obj: Any, name: str, where: str = "", *, lo: int | None = None, hi: int | None = None,
            default: Any = _MISSING) -> int:  # fmt: skip
    value = need(obj, name, where, default)
    if value is default and default is not _MISSING:
        return value
    return check_integer(value, _where(where, name), lo=lo, hi=hi)


def check_integer(value: Any, what: str, *, lo: int | None = None, hi: int | None = None) -> int:
    v = check_number(value, what, lo=lo, hi=hi)
    if v != int(v):
        raise SourceError(f"{what}: expected an integer, got {value!r}")
    return int(v)


def listing(obj: Any, name: str, where: str = "", *, nonempty: bool = True, default: Any = _MISSING) -> list:
    value = need(obj, name, where, default)
    if value is default and default is not _MISSING:
        return value
    if not isinstance(value, list):
        raise SourceError(f"{_where(where, name)}: expected a list, got {type(value).__name__}")
    if nonempty and not value:
        raise SourceError(f"{_where(where, name)}: empty list")
    return value


def mapping(obj: Any, name: str, where: str = "", default: Any = _MISSING) -> dict:
    value = need(obj, name, where, default)
    if value is default and default is not _MISSING:
        return value
    if not isinstance(value, dict):
        raise SourceError(f"{_where(where, name)}: expected an object, got {type(value).__name__}")
    return value


def texts(obj: Any, name: str, where: str = "", *, nonempty: bool = True) -> list[str]:
    """A list of non-blank strings."""
    items = listing(obj, name, where, nonempty=nonempty)
    return [check_text(v, f"{_where(where, name)}[{i}]") for i, v in enumerate(items)]
