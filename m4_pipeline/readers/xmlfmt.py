"""XML annotation files, one item per file (Flickr30k Entities' ``Annotations/<id>.xml``, VOC).

Parsed with defusedxml (no entity expansion, no external entities, no DTD fetching). Each file
becomes a dict in the usual "xmltodict" shape: an element with neither children nor attributes
is its text; otherwise a dict of its attributes, its children by tag (a list when a tag
repeats) and its text under ``#text``. ``_file`` holds the file's relative path and ``_stem``
its name without extension.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

from ..paths import SourceRoot
from .base import Item, Part, Reader


def element_to_data(el) -> Any:
    children = list(el)
    text = (el.text or "").strip()
    if not children and not el.attrib:
        return text
    out: dict[str, Any] = dict(el.attrib)
    for child in children:
        value = element_to_data(child)
        if child.tag in out:
            previous = out[child.tag]
            out[child.tag] = [*(previous if isinstance(previous, list) else [previous]), value]
        else:
            out[child.tag] = value
    if text:
        out["#text"] = text
    return out


def as_list(value: Any) -> list:
    """A field that may be one item or a list of them, as a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


class Xml(Reader):
    name = "xml"
    extensions = (".xml",)

    def read(self, src: SourceRoot, part: Part) -> Iterator[Item]:
        from defusedxml import ElementTree
        from defusedxml.common import DefusedXmlException

        path = src.annotation(part.file)
        try:
            root = ElementTree.parse(str(path)).getroot()
        except (ElementTree.ParseError, DefusedXmlException) as err:
            yield Item(part.file, "file", None, f"{part.file}: malformed or unsafe XML: {err}")
            return
        data = element_to_data(root)
        if not isinstance(data, dict):
            data = {"#text": data}
        data["_file"], data["_stem"] = part.file, PurePosixPath(part.file).stem
        yield Item(part.file, "file", data)
