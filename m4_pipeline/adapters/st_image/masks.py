"""The pixel box of a COCO-style segmentation (polygons or RLE), without pycocotools.

COCO segmentations come in three shapes (pycocotools ``frPyObjects`` accepts all three):

- polygons: ``[[x1, y1, x2, y2, ...], ...]`` in pixel coordinates; the box is the extent of the
  vertices (pycocotools would rasterise first, which can differ by under a pixel);
- uncompressed RLE: ``{"size": [h, w], "counts": [n0, n1, ...]}``, alternating runs of 0 and 1
  over the mask in column-major (Fortran) order, starting with zeros;
- compressed RLE: the same runs with ``counts`` as a string: each run a little-endian base-32
  varint of 6-bit characters (offset 48, bit 0x20 = more, sign bit 0x10 on the last), runs after
  the second stored as the difference to the run two before.

The result is ``[x1, y1, x2, y2]`` in continuous pixel coordinates (a mask covering pixel column
``c`` spans ``[c, c+1)``), ready for :func:`m4_pipeline.coords.norm_box` with ``fmt="xyxy"``.
"""

from __future__ import annotations

from typing import Any

from ...errors import SourceError


def decode_rle_string(counts: str) -> list[int]:
    """The run lengths of a compressed COCO RLE string."""
    runs: list[int] = []
    pos = 0
    while pos < len(counts):
        value, shift, more = 0, 0, True
        while more:
            if pos >= len(counts):
                raise SourceError("compressed RLE ends inside a run")
            c = ord(counts[pos]) - 48
            if not 0 <= c < 64:
                raise SourceError(f"compressed RLE has an invalid character {counts[pos]!r}")
            value |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            pos += 1
            shift += 5
            if not more and c & 0x10:
                value |= -1 << shift
        if len(runs) > 2:
            value += runs[-2]
        runs.append(value)
    return runs


def rle_box(runs: list[int], height: int, width: int) -> list[float] | None:
    """The box of the foreground runs (odd positions) of a column-major RLE; None when empty."""
    if any(r < 0 for r in runs):
        raise SourceError("RLE has a negative run length")
    if sum(runs) != height * width:
        raise SourceError(f"RLE covers {sum(runs)} pixels, the {width}x{height} mask has {height * width}")
    x1 = y1 = None
    x2 = y2 = -1
    pos = 0
    for i, run in enumerate(runs):
        if i % 2 and run:
            first, last = pos, pos + run - 1
            c0, c1 = first // height, last // height
            r0, r1 = (first % height, last % height) if c0 == c1 else (0, height - 1)
            x1 = c0 if x1 is None else min(x1, c0)
            y1 = r0 if y1 is None else min(y1, r0)
            x2, y2 = max(x2, c1), max(y2, r1)
        pos += run
    if x1 is None:
        return None
    return [float(x1), float(y1), float(x2 + 1), float(y2 + 1)]


def polygon_box(polygons: list) -> list[float] | None:
    xs, ys = [], []
    for poly in polygons:
        if not isinstance(poly, list) or len(poly) % 2 or len(poly) < 6:
            raise SourceError("a polygon must be a flat list of at least 3 x, y pairs")
        for v in poly:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise SourceError(f"a polygon coordinate is not a number: {v!r}")
        xs += poly[0::2]
        ys += poly[1::2]
    if not xs:
        return None
    return [float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys))]


def segmentation_box(segmentation: Any, *, height: int, width: int) -> list[float]:
    """``[x1, y1, x2, y2]`` pixels of a polygon list, an RLE dict or a list of RLE dicts."""
    if isinstance(segmentation, dict):
        segmentation = [segmentation]
    if not isinstance(segmentation, list) or not segmentation:
        raise SourceError(f"segmentation: expected polygons or RLE, got {type(segmentation).__name__}")
    if all(isinstance(s, list) for s in segmentation):
        box = polygon_box(segmentation)
    elif all(isinstance(s, dict) for s in segmentation):
        boxes = [_rle_dict_box(s, height, width) for s in segmentation]
        boxes = [b for b in boxes if b is not None]
        box = None if not boxes else [min(b[0] for b in boxes), min(b[1] for b in boxes),
                                      max(b[2] for b in boxes), max(b[3] for b in boxes)]  # fmt: skip
    else:
        raise SourceError("segmentation mixes polygons and RLE")
    if box is None:
        raise SourceError("segmentation is empty")
    return box


def _rle_dict_box(rle: dict, height: int, width: int) -> list[float] | None:
    size = rle.get("size")
    if not (isinstance(size, list) and len(size) == 2):
        raise SourceError("RLE needs 'size': [height, width]")
    if [int(size[0]), int(size[1])] != [int(height), int(width)]:
        raise SourceError(f"RLE size {size} differs from the image's [{height}, {width}]")
    counts = rle.get("counts")
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", errors="replace")
    if isinstance(counts, str):
        runs = decode_rle_string(counts)
    elif isinstance(counts, list) and all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
        runs = counts
    else:
        raise SourceError("RLE 'counts' must be a string or a list of integers")
    return rle_box(runs, int(height), int(width))


def encode_rle_string(runs: list[int]) -> str:
    """The compressed string of RLE runs (for miniatures and tests; inverse of decode)."""
    out = []
    for i, run in enumerate(runs):
        x = run - runs[i - 2] if i > 2 else run
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            more = not ((x == 0 and not c & 0x10) or (x == -1 and c & 0x10))
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def mask_runs(mask_rows: list[list[int]]) -> list[int]:
    """Column-major RLE runs of a small 0/1 mask given row by row (for miniatures and tests)."""
    height, width = len(mask_rows), len(mask_rows[0])
    flat = [mask_rows[r][c] for c in range(width) for r in range(height)]
    runs, current, n = [], 0, 0
    for v in flat:
        if v != current:
            runs.append(n)
            current, n = v, 0
        n += 1
    runs.append(n)
    return runs
