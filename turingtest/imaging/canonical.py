"""The one form every pool image is stored in, real and synthetic alike.

Canonical form: 8-bit grayscale, ``size``×``size`` pixels, written by
:func:`png_encode` and nothing else, named by the SHA-256 of those bytes.

- **Geometry.** An image already at the target size is left alone. Any other
  is resized with Pillow's Lanczos filter (a = 3) on floating-point values,
  then centre-cropped (``fit="crop"``, the default: scale the short side to
  ``size``) or padded with black (``fit="pad"``: scale the long side).
- **Intensity.** Optional, identical for both sources: ``normalise=
  "percentile"`` maps the ``low``/``high`` percentiles to 0/255.
- **Encoding.** Exactly three chunks, IHDR IDAT IEND: no text, time, gamma,
  ICC, EXIF or physical-size chunks. Rows use filter 0 and the deflate stream
  is *stored* (level 0), so the byte size is a function of width and height
  alone. Compressed size would track content entropy (noise, smoothness),
  a cue a browser shows but a reader's eye should not get.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image as PILImage

from turingtest.conf import project_settings

RESIZE_FILTER = PILImage.Resampling.LANCZOS
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class CanonicalSpec:
    size: int = 224
    fit: str = "crop"  # "crop" or "pad"
    normalise: str = "none"  # "none" or "percentile"
    low: float = 1.0
    high: float = 99.0
    compress_level: int = 0

    def __post_init__(self) -> None:
        if self.fit not in ("crop", "pad"):
            raise ValueError(f"fit must be 'crop' or 'pad', not {self.fit!r}")
        if self.normalise not in ("none", "percentile"):
            raise ValueError("normalise must be 'none' or 'percentile'")
        if not 0 <= self.low < self.high <= 100:
            raise ValueError("need 0 <= low < high <= 100")

    @classmethod
    def from_settings(cls) -> CanonicalSpec:
        conf = project_settings()
        return cls(
            size=conf.image_size,
            fit=conf.image_fit,
            normalise=conf.image_normalise,
            low=conf.image_normalise_low,
            high=conf.image_normalise_high,
            compress_level=conf.png_compress_level,
        )


@dataclass(frozen=True)
class CanonicalImage:
    png: bytes
    sha256: str
    width: int
    height: int


def as_float_gray(pixels) -> np.ndarray:
    """A 2-D float array on the 0..255 scale from a uint8/uint16 array or PIL image."""
    if isinstance(pixels, PILImage.Image):
        # Imported here: decode imports this module.
        from turingtest.imaging.decode import _pillow_gray

        return _pillow_gray(pixels, [])
    arr = np.asarray(pixels)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        from turingtest.imaging.decode import BT601  # (decode imports this module)

        arr = arr[..., :3].astype(np.float64) @ BT601
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D gray image, got shape {arr.shape}")
    if arr.dtype == np.uint16:
        return arr.astype(np.float64) * (255.0 / 65535.0)
    if arr.dtype == np.bool_:
        return arr.astype(np.float64) * 255.0
    # No copy of an array that is float64 already (a decoded image can be
    # hundreds of megabytes); nothing downstream writes into it.
    return np.asarray(arr, dtype=np.float64)


def _float_image(arr: np.ndarray) -> PILImage.Image:
    """A Pillow "F" image of ``arr``, filled a band of rows at a time so that
    no float32 copy of the whole array exists beside the image."""
    height, width = arr.shape
    img = PILImage.new("F", (width, height))
    rows = max(1, (1 << 20) // max(width, 1))
    for top in range(0, height, rows):
        band = np.ascontiguousarray(arr[top : top + rows], dtype=np.float32)
        img.paste(PILImage.fromarray(band, mode="F"), (0, top))
    return img


def canonical_pixels(pixels: np.ndarray, spec: CanonicalSpec) -> np.ndarray:
    """Float 0..255 pixels of any size → uint8 ``spec.size`` square."""
    arr = np.asarray(pixels, dtype=np.float64)
    height, width = arr.shape
    size = spec.size
    if (height, width) != (size, size):
        scale = (min if spec.fit == "crop" else max)(height, width)
        new_w = max(1, round(width * size / scale))
        new_h = max(1, round(height * size / scale))
        img = _float_image(arr)
        arr = np.asarray(img.resize((new_w, new_h), RESIZE_FILTER), dtype=np.float64)
        del img
        if spec.fit == "crop":
            top, left = (new_h - size) // 2, (new_w - size) // 2
            arr = arr[top : top + size, left : left + size]
        else:
            canvas = np.zeros((size, size), dtype=np.float64)
            top, left = (size - new_h) // 2, (size - new_w) // 2
            canvas[top : top + new_h, left : left + new_w] = arr
            arr = canvas
    if spec.normalise == "percentile":
        lo, hi = np.percentile(arr, [spec.low, spec.high])
        arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
    return np.clip(np.rint(arr), 0, 255).astype(np.uint8)


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_encode(pixels: np.ndarray, *, compress_level: int = 0) -> bytes:
    """8-bit gray PNG with IHDR, one IDAT and IEND; nothing else."""
    arr = np.ascontiguousarray(pixels, dtype=np.uint8)
    if arr.ndim != 2:
        raise ValueError("png_encode needs a 2-D uint8 array")
    height, width = arr.shape
    raw = np.zeros((height, width + 1), dtype=np.uint8)  # filter byte 0 per row
    raw[:, 1:] = arr
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(raw.tobytes(), compress_level)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", idat)
        + _chunk(b"IEND", b"")
    )


def canonicalise(pixels, spec: CanonicalSpec | None = None) -> CanonicalImage:
    """Pixels (2-D array on 0..255, uint8/uint16 array or PIL image) → canonical PNG."""
    spec = spec or CanonicalSpec.from_settings()
    arr = canonical_pixels(as_float_gray(pixels), spec)
    png = png_encode(arr, compress_level=spec.compress_level)
    return CanonicalImage(
        png=png,
        sha256=hashlib.sha256(png).hexdigest(),
        width=arr.shape[1],
        height=arr.shape[0],
    )


def png_chunks(data: bytes) -> list[str]:
    """Chunk types of a PNG in file order; [] if ``data`` is not a PNG."""
    if not data.startswith(PNG_SIGNATURE):
        return []
    chunks, pos = [], len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        chunks.append(kind.decode("latin-1"))
        pos += 12 + length
        if kind == b"IEND":
            break
    return chunks
