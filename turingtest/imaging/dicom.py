"""DICOM in (pixels only, never the header) and out (Secondary Capture).

Reading follows the grayscale pipeline of PS3.3 C.11 / PS3.4 N.2: stored
values → Modality LUT (rescale slope/intercept or LUT) → VOI LUT (a VOI LUT
Sequence if present, else the first Window Center/Width with its VOI LUT
Function) → display scale 0..255, then MONOCHROME1 is inverted so that bone
is bright in both photometric interpretations. Without any VOI data the full
range the stored bits can take is mapped linearly. No header value leaves
this module other than as a fixed note about what was applied.

Writing makes a Secondary Capture Image (SOP Class 1.2.840.10008.5.1.4.1.1.7)
with fresh UIDs, empty patient module, ImageType DERIVED\\SECONDARY and
ConversionType SYN (synthetic image).

References
----------
DICOM PS3.3 2024e, C.7.6.3 (Image Pixel), C.11.1 (Modality LUT),
C.11.2 (VOI LUT), A.8 (Secondary Capture Image IOD).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import (
    apply_color_lut,
    apply_modality_lut,
    apply_voi_lut,
    get_decoder,
    pixel_array,
)
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from turingtest.imaging.decode import (
    Decoded,
    ImageRejected,
    Limits,
    rgb_array_to_gray,
)

IMPLEMENTATION_VERSION = "TURINGTEST_1"


def dicom_decode(data: bytes, *, limits: Limits) -> Decoded:
    """Pixels of the first frame on the 0..255 display scale."""
    has_marker = data[128:132] == b"DICM"
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=not has_marker)
        # Parsing is lazy; touching the elements makes a malformed file fail here.
        ds.get("PixelData")
    except (InvalidDicomError, Exception) as exc:  # noqa: BLE001
        if not has_marker:
            raise ImageRejected("not a DICOM file (no 'DICM' marker)") from None
        raise ImageRejected(f"corrupt DICOM: {exc}") from None
    if not has_marker and not ("Rows" in ds and "PixelData" in ds):
        raise ImageRejected("not a DICOM file (no 'DICM' marker)")
    if not any(
        k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
    ):
        raise ImageRejected("DICOM without pixel data (not an image object)")
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        raise ImageRejected("DICOM float pixel data (parametric map) is not supported")
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError):
        raise ImageRejected("DICOM without Rows/Columns") from None
    limits.check(cols, rows)

    tsyntax = UID(ds.file_meta.get("TransferSyntaxUID", ExplicitVRLittleEndian))
    try:
        decoder = get_decoder(tsyntax)
    except NotImplementedError:
        raise ImageRejected(
            f"unsupported DICOM transfer syntax {tsyntax} ({tsyntax.name})"
        ) from None
    if not decoder.is_available:
        raise ImageRejected(
            f"DICOM transfer syntax {tsyntax.name} needs a decoder plugin that is "
            "not installed"
        )

    notes: list[str] = []
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    try:
        arr = pixel_array(ds, index=0) if frames > 1 else pixel_array(ds)
    except Exception as exc:  # noqa: BLE001 - any codec failure is a bad file
        raise ImageRejected(f"DICOM pixel data cannot be decoded: {exc}") from None
    if frames > 1:
        notes.append(f"multi-frame DICOM ({frames} frames): the first one taken")
    if tsyntax.is_compressed:
        notes.append(f"decompressed from {tsyntax.name}")

    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        if arr.ndim != 2:
            raise ImageRejected(f"unexpected DICOM pixel array shape {arr.shape}")
        pixels = _grayscale_pipeline(arr, ds, notes)
        if photometric == "MONOCHROME1":
            pixels = 255.0 - pixels
            notes.append("MONOCHROME1 inverted")
    elif photometric == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds)
        top = 65535.0 if rgb.dtype.itemsize > 1 else 255.0
        pixels = rgb_array_to_gray(rgb, 255.0 / top)
        notes.append("palette colour converted to gray (BT.601 luma)")
    elif photometric in ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT"):
        bits = int(ds.get("BitsStored", 8))
        pixels = rgb_array_to_gray(arr, 255.0 / (2**bits - 1))
        notes.append("colour converted to gray (BT.601 luma)")
    else:
        raise ImageRejected(f"unsupported photometric interpretation {photometric}")
    return Decoded(pixels=np.clip(pixels, 0.0, 255.0), format="DICOM", notes=notes)


def _grayscale_pipeline(arr: np.ndarray, ds: Dataset, notes: list[str]) -> np.ndarray:
    values = apply_modality_lut(arr, ds).astype(np.float64)
    if "ModalityLUTSequence" in ds or "RescaleSlope" in ds or "RescaleIntercept" in ds:
        notes.append("Modality LUT applied")

    if ds.get("VOILUTSequence"):
        item = ds.VOILUTSequence[0]
        lut_bits = int(item.LUTDescriptor[2])
        out = apply_voi_lut(values, ds, index=0, prefer_lut=True).astype(np.float64)
        notes.append("VOI LUT applied")
        return out * (255.0 / (2**lut_bits - 1))

    if "WindowCenter" in ds and "WindowWidth" in ds:
        center = _first(ds.WindowCenter)
        width = _first(ds.WindowWidth)
        function = str(ds.get("VOILUTFunction", "LINEAR")).upper() or "LINEAR"
        notes.append(f"VOI window applied ({function.lower()})")
        return window(values, center=center, width=width, function=function)

    lo, hi = _stored_range(ds)
    notes.append("no VOI window: full stored range mapped")
    return (values - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(values)


def window(
    values: np.ndarray, *, center: float, width: float, function: str = "LINEAR"
) -> np.ndarray:
    """PS3.3 C.11.2.1.2 windowing onto 0..255."""
    y_min, y_max = 0.0, 255.0
    if function == "SIGMOID":
        if width <= 0:
            raise ImageRejected("DICOM window width must be positive")
        return y_max / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT":
        if width <= 0:
            raise ImageRejected("DICOM window width must be positive")
        out = (values - center) / width + 0.5
        return np.clip(out, 0.0, 1.0) * (y_max - y_min) + y_min
    if width < 1:
        raise ImageRejected("DICOM window width below 1")
    out = ((values - (center - 0.5)) / (width - 1.0) + 0.5) * (y_max - y_min) + y_min
    below = values <= center - 0.5 - (width - 1.0) / 2.0
    above = values > center - 0.5 + (width - 1.0) / 2.0
    return np.where(below, y_min, np.where(above, y_max, out))


def _first(value) -> float:
    if isinstance(value, list | tuple | pydicom.multival.MultiValue):
        value = value[0]
    return float(value)


def _stored_range(ds: Dataset) -> tuple[float, float]:
    if ds.get("ModalityLUTSequence"):
        bits = int(ds.ModalityLUTSequence[0].LUTDescriptor[2])
        return 0.0, float(2**bits - 1)
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 8)))
    if int(ds.get("PixelRepresentation", 0)) == 1:
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    else:
        lo, hi = 0, 2**bits - 1
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    a, b = lo * slope + intercept, hi * slope + intercept
    return min(a, b), max(a, b)


def secondary_capture(
    pixels: np.ndarray,
    *,
    statement: str,
    series_description: str = "",
    study_uid: str | None = None,
    series_uid: str | None = None,
    instance_number: int = 1,
) -> Dataset:
    """An 8-bit MONOCHROME2 Secondary Capture of ``pixels`` with no patient data.

    ``statement`` goes into ImageComments and DerivationDescription: the plain
    words a receiving site sees about what the image is.
    """
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    if pixels.ndim != 2:
        raise ValueError("secondary_capture needs a 2-D array")
    sop_uid = generate_uid()

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION

    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.ImageType = ["DERIVED", "SECONDARY"]
    # Patient and study modules: type 2 elements present and empty.
    ds.PatientName = ""
    ds.PatientID = ""
    ds.PatientBirthDate = ""
    ds.PatientSex = ""
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.StudyDate = ""
    ds.StudyTime = ""
    ds.ReferringPhysicianName = ""
    ds.StudyID = ""
    ds.AccessionNumber = ""
    ds.Modality = "OT"
    ds.SeriesNumber = 1
    ds.SeriesDescription = series_description[:64]
    ds.InstanceNumber = instance_number
    ds.ConversionType = "SYN"
    ds.Manufacturer = "turingtest"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.ImageComments = statement
    ds.DerivationDescription = statement[:1024]
    ds.PatientOrientation = ""

    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.tobytes()
    return ds


def dicom_write(ds: Dataset, path: str | Path) -> None:
    ds.save_as(path, enforce_file_format=True)
