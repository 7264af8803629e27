"""Any supported file to one 2-D gray array, or a specific reason why not.

The decoders look at content, never at the file name: a text file named
``.png`` is not a PNG. Sizes are checked from the header before any pixel is
decoded, so a decompression bomb costs a few hundred bytes of reading.

Output scale: pixel values are floats on the 8-bit display scale 0..255 (not
yet rounded). Colour becomes gray by ITU-R BT.601 luma, the weights Pillow
uses for ``convert("L")``. 16-bit gray maps its full stored range 0..65535
linearly onto 0..255. DICOM goes through its Modality LUT, VOI LUT or window
and photometric inversion (see :mod:`turingtest.imaging.dicom`).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps

from turingtest.conf import project_settings

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Pillow plugins allowed to open a file: everything else is refused unread.
PILLOW_FORMATS = ("PNG", "JPEG", "TIFF")
BT601 = np.array([0.299, 0.587, 0.114], dtype=np.float64)


class ImageRejected(ValueError):
    """A file that cannot enter the pool; the message says why, for a person."""


@dataclass(frozen=True)
class Limits:
    """Sanity limits on what a radiograph can look like."""

    max_pixels: int = 40_000_000
    min_side: int = 32
    max_aspect: float = 4.0

    @classmethod
    def from_settings(cls) -> Limits:
        conf = project_settings()
        return cls(
            max_pixels=conf.max_image_pixels,
            min_side=conf.min_image_side,
            max_aspect=conf.max_aspect_ratio,
        )

    def check(self, width: int, height: int) -> None:
        if width * height > self.max_pixels:
            raise ImageRejected(
                f"decompression bomb: {width}×{height} px would decode to "
                f"{width * height / 1e6:.0f} megapixels "
                f"(limit {self.max_pixels / 1e6:.0f})"
            )
        if min(width, height) < self.min_side:
            raise ImageRejected(
                f"too small: {width}×{height} px (at least {self.min_side} px a side)"
            )
        aspect = max(width, height) / min(width, height)
        if aspect > self.max_aspect:
            raise ImageRejected(
                f"absurd aspect ratio {aspect:.1f}:1 ({width}×{height} px; "
                f"at most {self.max_aspect:g}:1)"
            )


@dataclass
class Decoded:
    """Pixels on the 0..255 display scale plus what was done to get them."""

    pixels: np.ndarray  # (H, W) float64
    format: str
    notes: list[str] = field(default_factory=list)

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def sniff(data: bytes) -> str:
    """The format by magic bytes: PNG, JPEG, TIFF, DICOM, ZIP or ''."""
    if data.startswith(PNG_SIGNATURE):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if data[128:132] == b"DICM":
        return "DICOM"
    if data.startswith(b"PK\x03\x04") or data.startswith(b"PK\x05\x06"):
        return "ZIP"
    return ""


def _describe_unknown(data: bytes) -> str:
    head = data[:512]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return "not an image: content is not PNG, JPEG, TIFF or DICOM"
    if all(c.isprintable() or c.isspace() for c in text):
        return "not an image: the file contains text"
    return "not an image: content is not PNG, JPEG, TIFF or DICOM"


def decode(data: bytes, name: str = "", *, limits: Limits | None = None) -> Decoded:
    """Decode file content into display-scale gray pixels.

    Raises :class:`ImageRejected` with a reason a person can act on.
    """
    limits = limits or Limits.from_settings()
    if not data:
        raise ImageRejected("empty file (0 bytes)")
    kind = sniff(data)
    if kind == "DICOM" or (not kind and name.lower().endswith((".dcm", ".dicom"))):
        # Imported here: the DICOM module imports this one.
        from turingtest.imaging.dicom import dicom_decode

        return dicom_decode(data, limits=limits)
    if kind == "ZIP":
        raise ImageRejected("nested archive: a ZIP inside the import is not opened")
    if not kind:
        raise ImageRejected(_describe_unknown(data))
    return pillow_decode(data, kind, limits=limits)


def pillow_decode(data: bytes, kind: str, *, limits: Limits) -> Decoded:
    notes: list[str] = []
    try:
        with warnings.catch_warnings():
            # Our own pixel limit applies; Pillow's bomb warning is noise here.
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            im = PILImage.open(io.BytesIO(data), formats=PILLOW_FORMATS)
    except PILImage.DecompressionBombError as exc:
        raise ImageRejected(f"decompression bomb: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - any parser failure is a bad file
        raise ImageRejected(f"corrupt {kind}: {exc}") from None
    with im:
        width, height = im.size
        limits.check(width, height)
        if im.mode == "CMYK":
            raise ImageRejected(
                f"CMYK {im.format} (print colour separation): save it as "
                "grayscale or RGB"
            )
        if getattr(im, "n_frames", 1) > 1:
            notes.append(f"{im.n_frames} frames: the first one taken")
        try:
            im.load()
        except Exception as exc:  # noqa: BLE001
            reason = str(exc) or type(exc).__name__
            if "truncat" in reason.lower() or isinstance(exc, EOFError):
                raise ImageRejected(f"truncated {kind}: {reason}") from None
            raise ImageRejected(f"corrupt {kind}: {reason}") from None
        orientation = im.getexif().get(0x0112, 1)
        if orientation not in (1, None):
            im = ImageOps.exif_transpose(im)
            notes.append(f"EXIF orientation {orientation} applied")
        pixels = _pillow_gray(im, notes)
    return Decoded(pixels=pixels, format=kind, notes=notes)


def _pillow_gray(im: PILImage.Image, notes: list[str]) -> np.ndarray:
    mode = im.mode
    if mode in ("L", "LA"):
        if mode == "LA":
            notes.append("alpha channel dropped")
        return np.asarray(im.getchannel(0), dtype=np.float64)
    if mode == "1":
        return np.asarray(im.convert("L"), dtype=np.float64)
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(im)
        if arr.dtype.kind == "i" and (arr.min() < 0 or arr.max() > 65535):
            raise ImageRejected("32-bit integer image outside the 16-bit range")
        arr = arr.astype(np.float64)
        if arr.max() < 4096:
            notes.append("16-bit image uses 12 bits or fewer: it will look dark")
        notes.append("16-bit gray mapped 0..65535 → 0..255")
        arr *= 255.0 / 65535.0  # in place: one float array per image, not two
        return arr
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        if not np.isfinite(arr).all():
            raise ImageRejected("floating-point image with NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        notes.append(f"floating-point image stretched {lo:g}..{hi:g} → 0..255")
        return (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
    if mode in ("P", "PA"):
        im = im.convert("RGBA" if "transparency" in im.info or mode == "PA" else "RGB")
        notes.append("palette expanded")
        mode = im.mode
    if mode in ("RGB", "RGBA", "RGBX"):
        if mode == "RGBA":
            notes.append("alpha channel dropped")
        gray, coloured = _colour_to_gray(im)
        if coloured:
            notes.append("colour converted to gray (BT.601 luma)")
        return gray
    raise ImageRejected(f"unsupported pixel mode {mode!r}")


# Rows of colour converted at a time: about a million pixels, so the float
# copies of one band stay near 30 MB whatever the image's size.
BAND_PIXELS = 1 << 20


def rgb_array_to_gray(rgb: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """BT.601 luma of an (H, W, 3+) integer array times ``scale``, a band of
    rows at a time (for decoders that hand over a whole colour array)."""
    height, width = rgb.shape[:2]
    rows = max(1, BAND_PIXELS // max(width, 1))
    gray = np.empty((height, width), dtype=np.float64)
    for top in range(0, height, rows):
        band = rgb[top : top + rows, :, :3].astype(np.float64)
        if scale != 1.0:
            band *= scale
        gray[top : top + rows] = band @ BT601
    return gray


def _colour_to_gray(im: PILImage.Image) -> tuple[np.ndarray, bool]:
    """BT.601 luma of an RGB(A/X) image, and whether any pixel had colour.

    The colour image never becomes one float array: a 6000×6000 RGBA PNG
    would take 1.1 GB as float64 channels. Bands of rows go to gray one at a
    time, so memory is the decoded image (4 bytes a pixel) plus the gray
    result (8 bytes a pixel) plus one band.
    """
    width, height = im.size
    rows = max(1, BAND_PIXELS // max(width, 1))
    bands = [(top, min(height, top + rows)) for top in range(0, height, rows)]

    def band(top: int, bottom: int) -> np.ndarray:
        return np.asarray(im.crop((0, top, width, bottom)))[..., :3]

    def is_gray(rgb: np.ndarray) -> bool:
        red = rgb[..., 0]
        return np.array_equal(red, rgb[..., 1]) and np.array_equal(red, rgb[..., 2])

    coloured = not all(is_gray(band(*b)) for b in bands)
    gray = np.empty((height, width), dtype=np.float64)
    for top, bottom in bands:
        rgb = band(top, bottom)
        gray[top:bottom] = rgb.astype(np.float64) @ BT601 if coloured else rgb[..., 0]
    return gray, coloured
