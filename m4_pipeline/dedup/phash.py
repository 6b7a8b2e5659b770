"""64-bit perceptual hashes, bit-identical to ``imagehash.phash``, computed over batches.

The reference (imagehash 4.3) does, per image: ``convert("L")``, a LANCZOS resize to 32x32,
``scipy.fftpack.dct`` along axis 0 then axis 1, and ``low > median(low)`` over the top-left 8x8
coefficients, read row-major. We do the same PIL calls (the resize is 90% of the cost and any
other resampler changes bits), then run the DCT, the median and the bit packing once over the
whole batch. A hash is a Python ``int`` / ``numpy.uint64`` whose most significant bit is the
first bit imagehash stores, so ``f"{h:016x}" == str(imagehash.phash(img))``.

``workers`` > 1 hashes on threads: PIL releases the GIL while decoding and resizing.
``draft=True`` lets libjpeg decode JPEG bytes at a reduced scale in luma only: several times
faster, but the bits are no longer identical to imagehash (close: see benchmarks/dedup_speed.py).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import MediaError

HASH_SIZE = 8
IMG_SIZE = HASH_SIZE * 4  # imagehash's highfreq_factor = 4
_LANCZOS = Image.Resampling.LANCZOS
_BIT_WEIGHTS = np.left_shift(np.uint64(1), np.arange(63, -1, -1, dtype=np.uint64))


def _dct():
    try:
        import scipy.fftpack
    except ImportError as err:  # pragma: no cover - scipy comes with the dedup extra
        raise ImportError("pHash needs scipy: pip install 'm4-pipeline[dedup]'") from err
    return scipy.fftpack.dct


def shrink(img: Image.Image) -> np.ndarray:
    """The 32x32 grey pixels imagehash hashes (the expensive step: full-size convert + resize)."""
    return np.asarray(img.convert("L").resize((IMG_SIZE, IMG_SIZE), _LANCZOS))


def hash_pixels(pixels: np.ndarray) -> np.ndarray:
    """pHashes (uint64) of a stack of 32x32 grey images, shape (N, 32, 32)."""
    pixels = np.asarray(pixels)
    if pixels.ndim != 3 or pixels.shape[1:] != (IMG_SIZE, IMG_SIZE):
        raise ValueError(f"expected (N, {IMG_SIZE}, {IMG_SIZE}) pixels, got shape {pixels.shape}")
    if len(pixels) == 0:
        return np.zeros(0, np.uint64)
    dct = _dct()
    coeffs = dct(dct(pixels, axis=1), axis=2)  # imagehash: axis 0 then axis 1 of one image
    low = coeffs[:, :HASH_SIZE, :HASH_SIZE].reshape(len(pixels), HASH_SIZE * HASH_SIZE)
    bits = low > np.median(low, axis=1)[:, None]
    return (bits.astype(np.uint64) * _BIT_WEIGHTS).sum(axis=1, dtype=np.uint64)


def _map(fn, items, workers: int) -> list:
    if workers <= 1 or len(items) < 2:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items, chunksize=max(1, len(items) // (workers * 4))))


def phash_images(images: Sequence[Image.Image], *, workers: int = 1) -> np.ndarray:
    """pHashes of decoded PIL images, bit-identical to ``imagehash.phash``."""
    if not images:
        return np.zeros(0, np.uint64)
    return hash_pixels(np.stack(_map(shrink, list(images), workers)))


def phash_image(img: Image.Image) -> int:
    return int(phash_images([img])[0])


def shrink_bytes(data: bytes, draft: bool = False) -> np.ndarray:
    """:func:`shrink` of encoded image bytes (``draft``: see :func:`phash_bytes`)."""
    try:
        img = Image.open(io.BytesIO(data))
        if draft and img.format == "JPEG":
            img.draft("L", (IMG_SIZE * 2, IMG_SIZE * 2))  # DCT-domain downscale, at least 64x64
        return shrink(img)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise MediaError(f"cannot decode image for pHash: {err}") from err


def phash_bytes(datas: Sequence[bytes], *, workers: int = 1, draft: bool = False) -> np.ndarray:
    """pHashes of encoded images. ``draft=False`` is bit-identical to ``imagehash.phash(Image.open(...))``."""
    if not datas:
        return np.zeros(0, np.uint64)
    return hash_pixels(np.stack(_map(lambda d: shrink_bytes(d, draft), list(datas), workers)))


# --- distances ----------------------------------------------------------------------------------

_POP8 = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def popcount64(x: np.ndarray) -> np.ndarray:
    """Set bits per uint64 (numpy's bitwise_count when it exists, a byte table otherwise)."""
    x = np.ascontiguousarray(x, dtype=np.uint64)
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).astype(np.int64)
    return _POP8[x.view(np.uint8).reshape(*x.shape, 8)].sum(axis=-1, dtype=np.int64)


def hamming(a: int, b: int) -> int:
    return (int(a) ^ int(b)).bit_count()


def hash_hex(h: int) -> str:
    """The hash as imagehash prints it: 16 hex digits."""
    return f"{int(h):016x}"


def hash_from_hex(text: str) -> int:
    if len(text) != 16:
        raise ValueError(f"a 64-bit pHash has 16 hex digits, got {text!r}")
    return int(text, 16)
