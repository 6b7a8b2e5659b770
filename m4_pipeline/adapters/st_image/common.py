"""What the ST image sources share: the checked image, boxes, and phrases interleaved with boxes.

**The image.** Boxes are normalised by the width and height the annotation gives (LLaVA-ST's
evaluation does the same), so the decoded image must have exactly that size: an image of another
size, or one that carries an EXIF rotation (the pipeline would turn it upright, the boxes were
drawn on the stored pixels), is quarantined as ``bad_media`` rather than paired with boxes that
no longer fit. Images are squashed to 384x384 by the trainer, so normalised boxes stay true.

**Interleaved answers.** A grounded caption is its text with each grounded phrase followed by its
box(es): :func:`interleave` turns (text, phrase spans, boxes) into a template whose literal text
is brace-escaped and whose boxes are fields, so :func:`m4_pipeline.templates.render` writes the
LAPE placeholders and fills ``variables`` in order of appearance. How a phrase and its box are
joined is the template ``@st_image/grounded_phrase`` (``"{phrase} {box}"``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from ...coords import Box, Ops, norm_box
from ...errors import MediaError, SourceError
from ...sample import Media, Sample
from ...templates import lookup
from ..base import Adapter, RawRecord, SourceParams

__all__ = [
    "Grounding",
    "ImageParams",
    "STImageAdapter",
    "check_task",
    "escape",
    "interleave",
    "join_path",
    "pixel_box",
    "union_box",
]


@dataclass
class ImageParams(SourceParams):
    """Where a source's images are and how the record names them."""

    image_dir: str = "images"  # folder of the image files, relative to the source root
    image_prefix: str = ""  # prefix of the record's ``image`` path (the trainer's data folder layout)


def join_path(prefix: str, name: str) -> str:
    return f"{prefix.rstrip('/')}/{name}" if prefix else name


def escape(text: str) -> str:
    """Literal text inside a template: braces doubled."""
    return text.replace("{", "{{").replace("}", "}}")


def check_task(task: str, tasks: tuple[str, ...], source: str) -> None:
    from ...errors import BuildError

    if task not in tasks:
        raise BuildError(f"{source}: task {task!r} is not one of {', '.join(tasks)}")


def pixel_box(box: Any, *, width: float, height: float, fmt: str, origin: int = 0, what: str, ops: Ops) -> Box:
    """A pixel box of the source's convention as a normalised :class:`Box` (see ``coords.norm_box``)."""
    return Box(*norm_box(box, width=width, height=height, fmt=fmt, origin=origin, what=what, ops=ops))


def union_box(boxes: list[Box]) -> Box:
    """The smallest box holding all of ``boxes`` (Flickr30k's "merged ground truth")."""
    return Box(min(b.x1 for b in boxes), min(b.y1 for b in boxes), max(b.x2 for b in boxes), max(b.y2 for b in boxes))


@dataclass(frozen=True)
class Grounding:
    """A phrase of a text, ``text[start:end]``, and the boxes it refers to."""

    start: int
    end: int
    boxes: tuple[Box, ...]


def interleave(
    text: str, groundings: list[Grounding], *, phrase_template: str, separator: str = ", ", ops: Ops | None = None
) -> tuple[str, dict[str, Box]]:
    """``text`` as a template in which each grounded phrase is followed by its boxes.

    ``phrase_template`` holds ``{phrase}`` and ``{box}`` (a library reference is looked up); the
    returned template holds one field per box (``{_g0}``, ``{_g1}``, ...) and the returned values
    map those fields to the boxes. Phrases are taken in text order; a phrase overlapping an
    earlier one is dropped and recorded in ``ops`` (``overlapping_phrase_dropped``)."""
    form = lookup(phrase_template) if phrase_template.startswith("@") else phrase_template
    if not isinstance(form, str) or "{phrase}" not in form or "{box}" not in form:
        raise SourceError(f"phrase template {phrase_template!r} must be one text with {{phrase}} and {{box}}")
    pieces, values, pos = [], {}, 0
    for g in sorted(groundings, key=lambda g: (g.start, g.end)):
        if not 0 <= g.start < g.end <= len(text):
            raise SourceError(f"phrase span [{g.start}, {g.end}) lies outside the {len(text)}-character text")
        if g.start < pos:
            if ops is not None:
                ops.add("overlapping_phrase_dropped")
            continue
        if not g.boxes:
            continue
        fields = []
        for box in g.boxes:
            name = f"_g{len(values)}"
            values[name] = box
            fields.append("{" + name + "}")
        phrase = form.replace("{phrase}", escape(text[g.start : g.end])).replace("{box}", separator.join(fields))
        pieces += [escape(text[pos : g.start]), phrase]
        pos = g.end
    pieces.append(escape(text[pos:]))
    return "".join(pieces), values


class STImageAdapter(Adapter):
    """Base of the ST image sources: the checked image and the one-image ST sample."""

    family: ClassVar[str] = "st"

    def load_image(self, rel: str, *, size: tuple[Any, Any] | None, where: str) -> Media:
        """The image at ``rel`` (under the source root), checked against the annotated size."""
        media = self.cached(("image", rel), lambda: self.image(rel, 0))
        rotated = [op for op in media.ops or [] if op.startswith("exif_orientation")]
        if rotated:
            raise MediaError(
                f"{where}: {rel} carries an EXIF rotation ({rotated[0]}): its boxes were drawn on the stored "
                "pixels, which the pipeline would turn upright",
                reason="bad_media",
            )
        if size is not None:
            width, height = (round(float(v)) for v in size)
            if [width, height] != list(media.size or []):
                raise MediaError(
                    f"{where}: {rel} is {media.size[0]}x{media.size[1]} but the annotation says {width}x{height}",
                    reason="bad_media",
                )
        return dataclasses.replace(media)

    def image_sample(
        self,
        record: RawRecord,
        turns: list[tuple[str, str, dict]],
        *,
        image: str,
        media: Media,
        notes: dict,
        ops: Ops,
    ) -> Sample:
        """An ST image sample: ``image`` (the record's path), one image slot, the rendered turns."""
        return self.st_sample(record, turns, image=image, media=[media], templates=notes, ops=ops.items)
