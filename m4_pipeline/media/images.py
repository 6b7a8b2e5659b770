"""Image decoding, normalization and deterministic encoding.

:func:`normalize_image` is the one path every source image takes: a full decode (so truncated
files fail here), a pixel-count guard against decompression bombs, EXIF orientation, conversion
of palette / alpha / CMYK / 16-bit / float images to 8-bit RGB, an optional size cap, and a
deterministic JPEG encode. A file that is already an acceptable JPEG (baseline RGB or grey,
upright, within the limits) keeps its original bytes. The operations applied are returned so
that provenance can record them.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import MediaError

JPEG_QUALITY = 95
_ORIENTATION_TAG = 0x0112


@dataclass(frozen=True)
class ImagePolicy:
    max_pixels: int = 64_000_000  # decoded pixels allowed (decompression-bomb guard)
    max_side: int | None = None  # resize so the longer side is at most this (None: keep size)
    keep_jpeg: bool = True  # keep the original bytes of an acceptable JPEG
    quality: int = JPEG_QUALITY


@dataclass
class NormalizedImage:
    data: bytes
    ext: str
    size: tuple[int, int]
    ops: list[str] = field(default_factory=list)
    image: Image.Image | None = field(default=None, repr=False)  # the decoded RGB pixels, for further work

    @property
    def decoded(self) -> Image.Image | None:
        """``image`` when it is exactly what ``data`` decodes to (kept original bytes), else None:
        re-encoded JPEG bytes decode to slightly different pixels."""
        return self.image if self.ops == ["kept_original"] else None


def open_image(data: bytes, what: str, max_pixels: int = ImagePolicy.max_pixels) -> Image.Image:
    """Decode fully (so a truncated file fails here, not later) after checking the pixel count."""
    try:
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > max_pixels:
            raise MediaError(f"{what}: {img.width}x{img.height} exceeds the {max_pixels}-pixel limit")
        img.load()
    except MediaError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise MediaError(f"{what}: cannot decode image: {err}") from err
    return img


def normalize_image(data: bytes, what: str, policy: ImagePolicy = ImagePolicy()) -> NormalizedImage:
    if not data:
        raise MediaError(f"{what}: empty file")
    img = open_image(data, what, policy.max_pixels)
    orientation = img.getexif().get(_ORIENTATION_TAG, 1)
    too_big = policy.max_side is not None and max(img.size) > policy.max_side
    if (
        policy.keep_jpeg
        and img.format == "JPEG"
        and img.mode in ("RGB", "L")
        and orientation in (0, 1)
        and not too_big
        and not img.info.get("progressive")
    ):
        return NormalizedImage(data, "jpg", img.size, ["kept_original"], to_rgb(img))
    ops: list[str] = []
    if orientation not in (0, 1):
        img = ImageOps.exif_transpose(img)
        ops.append(f"exif_orientation:{orientation}")
    if img.mode != "RGB":
        ops.append(f"to_rgb:{img.mode}")
        img = to_rgb(img)
    if too_big:
        scale = policy.max_side / max(img.size)
        new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(new, Image.BICUBIC)
        ops.append(f"resize:{new[0]}x{new[1]}")
    ops.append(f"jpeg:{policy.quality}")
    img = to_rgb(img)
    return NormalizedImage(encode_jpeg(img, policy.quality), "jpg", img.size, ops, img)


def read_image_file(path: Path, what: str, policy: ImagePolicy = ImagePolicy()) -> NormalizedImage:
    if not path.is_file():
        raise MediaError(f"missing image: {what}", reason="missing_media")
    return normalize_image(path.read_bytes(), what, policy)


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any PIL mode: alpha composited on white, 16-bit and float rescaled."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        grey = np.clip(arr / hi * 255.0, 0, 255).round().astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.split()[-1])
        return background
    return img.convert("RGB")  # P, L, 1, CMYK, YCbCr, LAB, HSV


def encode_jpeg(img: Image.Image | np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """Deterministic JPEG bytes (no EXIF, no timestamps): same pixels give the same bytes."""
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    buf = io.BytesIO()
    to_rgb(img).save(buf, format="JPEG", quality=quality, optimize=False, progressive=False)
    return buf.getvalue()
