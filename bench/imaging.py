"""Import throughput against the bare cost of decoding and encoding with Pillow.

    .venv/bin/python bench/imaging.py [--data DIR] [--limit N] [--repeat R]

Two cases, each on the same files measured side by side:

- PNG folder: ``images_import`` (decode, canonicalise, hash, write canonical
  and original, one database row each) against Pillow alone (open, convert
  to L, save as PNG in memory).
- DICOM: the same pictures written as 16-bit MONOCHROME2 DICOM with a VOI
  window; ``images_import`` against pydicom + Pillow alone (read, pixel
  array, scale to 8 bits, save as PNG in memory). Pillow cannot read DICOM.

The data are ``../shared/data/knee-kl/test`` where present, else phantom
images. The database is a fresh SQLite file in a temporary folder unless
DATABASE_URL is set, and MEDIA_ROOT is a temporary folder.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup(tmp: Path) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "turingtest.settings")
    os.environ["MEDIA_ROOT"] = str(tmp / "media")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp / 'bench.sqlite3'}")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def source_files(data: Path | None, limit: int, tmp: Path) -> list[Path]:
    default = ROOT.parent / "shared" / "data" / "knee-kl" / "test"
    data = data or (default if default.is_dir() else None)
    if data is None:
        from turingtest.imaging.phantom import phantom_dataset

        data = tmp / "phantoms"
        phantom_dataset(data, per_grade=max(1, limit // 5), size=224, seed=0)
    files = sorted(p for p in data.rglob("*.png"))[:limit]
    print(f"data: {len(files)} PNG files from {data}")
    return files


def copy_as_grade_folder(files: list[Path], folder: Path) -> Path:
    for i, path in enumerate(files):
        grade = path.parent.name if path.parent.name in "01234" else str(i % 5)
        target = folder / grade / f"{i:05d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    return folder


def write_dicoms(files: list[Path], folder: Path) -> Path:
    import numpy as np
    from PIL import Image as PILImage
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import (
        ExplicitVRLittleEndian,
        SecondaryCaptureImageStorage,
        generate_uid,
    )

    for i, path in enumerate(files):
        arr = np.asarray(PILImage.open(path).convert("L"), dtype=np.uint16) * 16
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = SecondaryCaptureImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.PatientName = "Bench^Patient"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = arr.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.PixelRepresentation = 0
        ds.WindowCenter, ds.WindowWidth = 2048, 4096
        ds.PixelData = arr.tobytes()
        grade = path.parent.name if path.parent.name in "01234" else str(i % 5)
        target = folder / grade / f"{i:05d}.dcm"
        target.parent.mkdir(parents=True, exist_ok=True)
        ds.save_as(target, enforce_file_format=True)
    return folder


def bare_png(paths: list[Path]) -> None:
    from PIL import Image as PILImage

    for path in paths:
        with PILImage.open(path) as im:
            im.convert("L").save(io.BytesIO(), "PNG")


def bare_dicom(paths: list[Path]) -> None:
    import numpy as np
    import pydicom
    from PIL import Image as PILImage

    for path in paths:
        arr = pydicom.dcmread(path).pixel_array
        arr8 = (arr.astype(np.float64) * (255.0 / 4095.0)).round().astype(np.uint8)
        PILImage.fromarray(arr8).save(io.BytesIO(), "PNG")


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def import_folder(folder: Path) -> None:
    from turingtest.imaging.services import images_import

    result = images_import(folder, source="real")
    if result.rejected or not result.imported:
        raise SystemExit(f"benchmark import failed: {result.summary()}")


def empty_pool(tmp: Path) -> None:
    """Rows and files gone, so the next round imports every file again."""
    import shutil

    from turingtest.imaging.models import Image

    Image.objects.all().delete()
    shutil.rmtree(tmp / "media", ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-imaging-") as tmpname:
        tmp = Path(tmpname)
        setup(tmp)
        files = source_files(args.data, args.limit, tmp)
        png_dir = copy_as_grade_folder(files, tmp / "png")
        dcm_dir = write_dicoms(files, tmp / "dicom")
        pngs = sorted(png_dir.rglob("*.png"))
        dcms = sorted(dcm_dir.rglob("*.dcm"))

        print(
            f"{'case':<8}{'files':>6}{'Pillow img/s':>14}{'import img/s':>14}"
            f"{'ratio':>8}"
        )
        for label, folder, paths, bare in (
            ("PNG", png_dir, pngs, bare_png),
            ("DICOM", dcm_dir, dcms, bare_dicom),
        ):
            bare_times, import_times = [], []
            for _ in range(args.repeat):
                bare_times.append(timed(bare, paths))
                import_times.append(timed(import_folder, folder))
                empty_pool(tmp)
            n = len(paths)
            bare_rate = n / min(bare_times)
            import_rate = n / min(import_times)
            print(
                f"{label:<8}{n:>6}{bare_rate:>14.0f}{import_rate:>14.0f}"
                f"{bare_rate / import_rate:>7.1f}x"
            )
        print(
            "ratio: how many times longer an import takes than Pillow alone "
            "(best of each, same files, run alternately)"
        )


if __name__ == "__main__":
    main()
