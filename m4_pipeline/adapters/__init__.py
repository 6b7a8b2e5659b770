"""The registry of source adapters: the one place that names them all."""

from __future__ import annotations

from .base import Adapter, MediaError, RawRecord, SourceError
from .llava_mix import LLaVAMix
from .m4_release import M4Release
from .nextqa import NExTQA
from .nlvr2 import NLVR2
from .scanqa import ScanQA
from .st_release import STRelease
from .vidstg import VidSTG

ADAPTERS: dict[str, type[Adapter]] = {
    NLVR2.name: NLVR2,
    NExTQA.name: NExTQA,
    ScanQA.name: ScanQA,
    LLaVAMix.name: LLaVAMix,
    VidSTG.name: VidSTG,
    M4Release.name: M4Release,
    STRelease.name: STRelease,
}


def get_adapter(name: str) -> type[Adapter]:
    try:
        return ADAPTERS[name]
    except KeyError:
        raise KeyError(f"unknown adapter {name!r}; valid adapters: {', '.join(sorted(ADAPTERS))}") from None


def write_miniature(name: str, root) -> None:
    """Write the miniature copy of a source in its published layout."""
    import importlib

    module = importlib.import_module(get_adapter(name).__module__)
    module.write_miniature(root)


__all__ = ["ADAPTERS", "Adapter", "MediaError", "RawRecord", "SourceError", "get_adapter", "write_miniature"]
