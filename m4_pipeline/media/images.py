"""Image decoding and deterministic encoding."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import MediaError

MAX_PIXELS = 178_956_970  # PIL's own decompression-bomb limit, made explicit
JPEG_QUALITY = 95
_KEEP_FORMATS = {"JPEG": "jpg", "PNG": "png"}


def open_image(data: bytes, what: str) -> Image.Image:
    """Decode fully (so a truncated file fails here, not later) and return an RGB image."""
    try:
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > MAX_PIXELS:
            raise MediaError(f"{what}: {img.width}x{img.height} exceeds the {MAX_PIXELS}-pixel limit")
        img.load()
    except MediaError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise MediaError(f"{what}: cannot decode image: {err}") from err
    return img


def read_image_file(path: Path, what: str) -> tuple[bytes, str, tuple[int, int]]:
    """Bytes, extension and (width, height) of an image file, verified by a full decode.

    JPEG and PNG files keep their original bytes; other formats are re-encoded as PNG.
    """
    if not path.is_file():
        raise MediaError(f"missing image: {what}", reason="missing_media")
    data = path.read_bytes()
    if not data:
        raise MediaError(f"{what}: empty file")
    img = open_image(data, what)
    ext = _KEEP_FORMATS.get(img.format or "")
    if ext is None:
        return encode_png(to_rgb(img)), "png", img.size
    return data, ext, img.size


def to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.split()[-1])
        return background
    return img.convert("RGB")


def encode_jpeg(img: Image.Image | np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    """Deterministic JPEG bytes (no EXIF, no timestamps): same pixels give the same bytes."""
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    buf = io.BytesIO()
    to_rgb(img).save(buf, format="JPEG", quality=quality, optimize=False, progressive=False)
    return buf.getvalue()


def encode_png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()
