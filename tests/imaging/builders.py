"""Test files built in memory: PNG, JPEG, TIFF, DICOM and the broken kinds."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pydicom
from PIL import Image as PILImage
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    SecondaryCaptureImageStorage,
    generate_uid,
)


def picture(seed: int = 0, size: tuple[int, int] = (224, 224)) -> np.ndarray:
    """A uint8 image with structure and noise, different for every seed."""
    rng = np.random.default_rng(seed)
    h, w = size
    y, x = np.mgrid[0:h, 0:w]
    cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
    blob = 150 * np.exp(-(((y - cy) / (0.3 * h)) ** 2 + ((x - cx) / (0.2 * w)) ** 2))
    base = 40 + 60 * x / w + blob + rng.normal(0, 8, size)
    return np.clip(base, 0, 255).astype(np.uint8)


def png(arr: np.ndarray, mode: str | None = None, **save) -> bytes:
    buf = io.BytesIO()
    im = (
        PILImage.fromarray(arr)
        if mode is None
        else PILImage.fromarray(arr).convert(mode)
    )
    im.save(buf, "PNG", **save)
    return buf.getvalue()


def png16(arr8: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(arr8.astype(np.uint16) * 257).save(buf, "PNG")
    return buf.getvalue()


def jpeg(arr: np.ndarray, mode: str = "L", quality: int = 95, **save) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(arr).convert(mode).save(buf, "JPEG", quality=quality, **save)
    return buf.getvalue()


def rgb_jpeg_with_exif(arr: np.ndarray) -> bytes:
    exif = PILImage.Exif()
    exif[0x010F] = "Camera Maker"  # Make
    exif[0x0110] = "Model X"  # Model
    exif[0x0132] = "2024:01:02 03:04:05"  # DateTime
    return jpeg(arr, mode="RGB", exif=exif.tobytes())


def tiff(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(arr).save(buf, "TIFF")
    return buf.getvalue()


def png_bomb(side: int = 8000) -> bytes:
    """A valid PNG of side×side black pixels: tens of KB that decode to GB."""
    comp = zlib.compressobj(9)
    row = bytes(side + 1)
    idat = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def png_rgba_large(side: int = 6000) -> bytes:
    """A valid side×side colour RGBA PNG of a few hundred KB, built without
    holding its pixels: one row of coloured stripes, the others "same as
    the row above" (PNG filter 2), so it compresses to almost nothing."""
    x = np.arange(side)
    first = np.stack(
        [x % 256, (3 * x) % 256, (255 - x) % 256, np.full(side, 255)], axis=1
    ).astype(np.uint8)
    comp = zlib.compressobj(9)
    parts = [comp.compress(b"\x00" + first.tobytes())]
    up = b"\x02" + bytes(4 * side)
    parts += [comp.compress(up) for _ in range(side - 1)]
    idat = b"".join(parts) + comp.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", idat)
        + chunk(b"IEND", b"")
    )


def dicom_dataset(
    arr: np.ndarray | None,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    signed: bool = False,
    window: tuple[float, float] | None = None,
    voi_function: str | None = None,
    rescale: tuple[float, float] | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    patient_name: str = "Doe^Jane",
) -> Dataset:
    """A DICOM dataset with patient data in the header, for the reader to ignore."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = transfer_syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = patient_name
    ds.PatientID = "PAT-12345"
    ds.PatientBirthDate = "19600101"
    ds.Modality = "DX"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    if arr is None:
        return ds
    frames = arr.shape[0] if arr.ndim == 3 else 1
    rows, cols = arr.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = rows, cols
    bits = arr.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits_stored or bits
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if signed else 0
    if frames > 1:
        ds.NumberOfFrames = frames
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if voi_function:
        ds.VOILUTFunction = voi_function
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    ds.PixelData = np.ascontiguousarray(arr).tobytes()
    return ds


def dicom_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def dicom(arr: np.ndarray | None, **kw) -> bytes:
    return dicom_bytes(dicom_dataset(arr, **kw))


def dicom_jpeg(arr8: np.ndarray, quality: int = 90) -> bytes:
    """JPEG baseline compressed DICOM (the frame made by Pillow)."""
    ds = dicom_dataset(arr8, transfer_syntax=JPEGBaseline8Bit)
    ds.PixelData = encapsulate([jpeg(arr8, quality=quality)])
    ds["PixelData"].VR = "OB"
    ds.LossyImageCompression = "01"
    return dicom_bytes(ds)


def dicom_unsupported_syntax(arr8: np.ndarray) -> bytes:
    """An MPEG-4 transfer syntax: no decoder exists for it here."""
    ds = dicom_dataset(arr8, transfer_syntax="1.2.840.10008.1.2.4.102")
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + bytes(64)])
    ds["PixelData"].VR = "OB"
    return dicom_bytes(ds)


def read_dicom(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data))
