"""Where a sample's ``<image>`` tokens stand: in place (interleaved with the text) or all in front.

LLaVA-NeXT-Interleave trains on a mix of both placements and reports the mix works best [V2];
the ratio is not published [U], so it is a recipe parameter (``front_fraction``). A sample's
placement is chosen from its key, so a rebuild makes the same choice, and the choice is recorded
in provenance ``ops`` (``placement:front``); a sample left as its source wrote it records nothing.
"""

from __future__ import annotations

import hashlib
import re

IMAGE_TOKEN = "<image>"
_TOKEN = re.compile(r"[ \t]*<image>[ \t]*")


def moves_to_front(key: str, front_fraction: float) -> bool:
    """Whether the sample with this key gets its tokens in front (deterministic in the key)."""
    if front_fraction <= 0:
        return False
    if front_fraction >= 1:
        return True
    digest = int(hashlib.sha1(f"{key}\x00placement".encode()).hexdigest()[:12], 16)
    return digest / float(1 << 48) < front_fraction


def tokens_to_front(turns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Every ``<image>`` of every turn removed and put, in the same number, at the start of the
    first turn (the images keep their order: the tokens are all alike)."""
    n = sum(text.count(IMAGE_TOKEN) for _, text in turns)
    if not n:
        return list(turns)
    out = [(role, _without_tokens(text)) for role, text in turns]
    role, text = out[0]
    out[0] = (role, IMAGE_TOKEN * n + ("\n" + text if text else ""))
    return out


def _without_tokens(text: str) -> str:
    text = _TOKEN.sub(" ", text)
    return "\n".join(re.sub(r" {2,}", " ", line).strip() for line in text.split("\n")).strip()


def place(turns: list[tuple[str, str]], key: str, front_fraction: float, ops: list[str]) -> list[tuple[str, str]]:
    """The turns with their tokens placed for this sample; ``ops`` gets ``placement:front`` when moved."""
    if not moves_to_front(key, front_fraction):
        return turns
    ops.append("placement:front")
    return tokens_to_front(turns)
