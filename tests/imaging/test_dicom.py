import csv
import io

import numpy as np
import pydicom
import pytest
from django.core.management import call_command
from PIL import Image as PILImage
from pydicom.uid import RLELossless

from tests.imaging import builders
from turingtest.generation.models import Generator
from turingtest.imaging.decode import ImageRejected, decode
from turingtest.imaging.models import Image
from turingtest.imaging.services import images_import


def ramp(size=224, top=255, dtype=np.uint8) -> np.ndarray:
    row = np.linspace(0, top, size)
    return np.tile(row, (size, 1)).round().astype(dtype)


def stored_pixels(image: Image) -> np.ndarray:
    with image.file.open("rb") as fh:
        return np.asarray(PILImage.open(io.BytesIO(fh.read())))


def test_monochrome2_8bit_is_taken_as_is():
    arr = builders.picture(1)
    decoded = decode(builders.dicom(arr), "x.dcm")
    assert decoded.format == "DICOM"
    np.testing.assert_array_equal(decoded.pixels, arr)


def test_monochrome1_is_inverted_so_bone_stays_bright():
    arr = builders.picture(2)
    decoded = decode(builders.dicom(arr, photometric="MONOCHROME1"))
    np.testing.assert_array_equal(decoded.pixels, 255 - arr.astype(float))
    assert "MONOCHROME1 inverted" in decoded.notes


def test_16bit_with_voi_window():
    arr = ramp(top=4095, dtype=np.uint16)  # 12 bits stored in 16
    center, width = 2048, 1024
    decoded = decode(builders.dicom(arr, bits_stored=12, window=(center, width)))
    px, values = decoded.pixels, arr.astype(float)
    assert (px[values <= center - width / 2 - 1] == 0).all()
    assert (px[values >= center + width / 2 + 1] == 255).all()
    inside = (values > center - width / 2 + 8) & (values < center + width / 2 - 8)
    expected = (values[inside] - (center - width / 2)) / width * 255
    np.testing.assert_allclose(px[inside], expected, atol=1.0)
    assert any("VOI window" in n for n in decoded.notes)


def test_modality_lut_comes_before_the_window():
    # Stored 0..4095 with intercept -1024: stored 1024 is value 0, the centre.
    arr = ramp(top=4095, dtype=np.uint16)
    data = builders.dicom(arr, bits_stored=12, rescale=(1, -1024), window=(0, 400))
    px = decode(data).pixels
    at_centre = np.abs(arr.astype(float) - 1024) < 2
    np.testing.assert_allclose(px[at_centre], 127.5, atol=2.0)


def test_16bit_without_window_maps_the_stored_range():
    arr = ramp(top=4095, dtype=np.uint16)
    px = decode(builders.dicom(arr, bits_stored=12)).pixels
    np.testing.assert_allclose(px, arr / 4095 * 255, atol=1e-9)


def test_sigmoid_voi_function():
    arr = ramp(top=4095, dtype=np.uint16)
    data = builders.dicom(
        arr, bits_stored=12, window=(2048, 1000), voi_function="SIGMOID"
    )
    px = decode(data).pixels
    np.testing.assert_allclose(px[arr == 2048], 127.5, atol=0.5)
    assert px[arr == 0].max() < 1 and px[arr == 4095].min() > 254


def test_jpeg_compressed_dicom_decodes_like_the_jpeg():
    arr = builders.picture(3)
    decoded = decode(builders.dicom_jpeg(arr))
    reference = np.asarray(PILImage.open(io.BytesIO(builders.jpeg(arr, quality=90))))
    assert np.abs(decoded.pixels - reference).max() <= 2
    assert any("JPEG Baseline" in n for n in decoded.notes)


def test_rle_compressed_dicom_is_lossless():
    arr = builders.picture(4)
    ds = builders.dicom_dataset(arr)
    ds.compress(RLELossless)
    decoded = decode(builders.dicom_bytes(ds))
    np.testing.assert_array_equal(decoded.pixels, arr)


def test_multiframe_takes_the_first_frame_and_says_so():
    frames = np.stack([builders.picture(s) for s in (5, 6, 7)])
    decoded = decode(builders.dicom(frames))
    np.testing.assert_array_equal(decoded.pixels, frames[0])
    assert any("3 frames" in n and "first" in n for n in decoded.notes)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (builders.dicom(None), "without pixel data"),
        (builders.dicom_unsupported_syntax(builders.picture(0)), "transfer syntax"),
        (b"this is not DICOM at all\n" * 40, "not a DICOM file"),
    ],
    ids=["no-pixel-data", "unsupported-syntax", "not-dicom"],
)
def test_bad_dicom_is_rejected_with_its_reason(data, reason):
    with pytest.raises(ImageRejected, match=reason):
        decode(data, "scan.dcm")


@pytest.mark.django_db
def test_imported_dicom_keeps_no_header_data(media, tmp_path):
    folder = tmp_path / "pacs" / "2"
    folder.mkdir(parents=True)
    arr = ramp(top=4095, dtype=np.uint16)
    (folder / "a.dcm").write_bytes(
        builders.dicom(
            arr, bits_stored=12, window=(2048, 4096), photometric="MONOCHROME1"
        )
    )
    result = images_import(folder.parent, source="real")
    assert [o.file for o in result.imported] == ["pacs/2/a.dcm"]
    image = result.imported[0].image
    assert image.kl_grade == 2 and (image.width, image.height) == (224, 224)
    px = stored_pixels(image).astype(int)
    # MONOCHROME1 ramp: brightest on the left after inversion.
    assert px[:, 0].mean() > 250 and px[:, -1].mean() < 5
    row = Image.objects.values().get(pk=image.pk)
    assert not any("Doe" in str(v) or "PAT-12345" in str(v) for v in row.values())
    # The original file would carry the header, so it is not kept either.
    assert not image.original and not (media / "originals").exists()
    assert "original not kept" in image.origin


@pytest.mark.django_db
def test_export_dicom_secondary_capture_round_trips(media, tmp_path, make_image):
    generator = Generator.objects.create(
        name="wgan-gp-7", checkpoint="x.pt", sha256="0" * 64
    )
    images = [
        make_image("synthetic", grade, generator=generator, seed=100 + grade)
        for grade in (0, 3)
    ]
    make_image("real", 1)
    out = tmp_path / "export"
    call_command("export_dicom", "--source", "synthetic", "--out", str(out))

    files = sorted(out.glob("*.dcm"))
    assert len(files) == 2
    uids = set()
    for image in images:
        ds = pydicom.dcmread(out / f"{image.sha256[:16]}.dcm")
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
        assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
        assert ds.ConversionType == "SYN"
        assert str(ds.PatientName) == "" and ds.PatientID == ""
        assert "SYNTHETIC" in ds.ImageComments
        assert (
            "wgan-gp-7" in ds.ImageComments and f"seed {image.seed}" in ds.ImageComments
        )
        np.testing.assert_array_equal(ds.pixel_array, stored_pixels(image))
        # Our own reader gives the same pixels back.
        np.testing.assert_array_equal(
            decode((out / f"{image.sha256[:16]}.dcm").read_bytes()).pixels,
            stored_pixels(image),
        )
        uids.add(ds.SOPInstanceUID)
        assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
    assert len(uids) == 2
    assert (out / "manifest.csv").read_text().count("\n") == 3


@pytest.mark.django_db
def test_export_dicom_names_every_reference(media, tmp_path, make_image):
    """Synthetic mammograms: their BI-RADS category is in the statement and
    in the manifest's reference_birads column."""
    generator = Generator.objects.create(
        name="mammo", checkpoint="m.pt", sha256="1" * 64
    )
    image = make_image(
        "synthetic", 2, generator=generator, seed=5, kl_grade=None,
        references={"birads": 4},
    )  # fmt: skip
    make_image("synthetic", 1, generator=generator, seed=6)  # a knee, KL 1
    out = tmp_path / "export"
    call_command("export_dicom", "--source", "synthetic", "--out", str(out))
    ds = pydicom.dcmread(out / f"{image.sha256[:16]}.dcm")
    assert ds.ImageComments.endswith("for reference BI-RADS 4.")
    with open(out / "manifest.csv", newline="") as fh:
        rows = {r["file"]: r for r in csv.DictReader(fh)}
    assert list(next(iter(rows.values()))) == [
        "file", "kl_grade", "reference_birads", "generator", "seed", "sop_instance_uid",
    ]  # fmt: skip
    mammo = rows[f"{image.sha256[:16]}.dcm"]
    assert (mammo["kl_grade"], mammo["reference_birads"]) == ("", "4")
    knee = next(r for name, r in rows.items() if r is not mammo)
    assert (knee["kl_grade"], knee["reference_birads"]) == ("1", "")


@pytest.mark.django_db
def test_export_dicom_filters_by_generator(media, tmp_path, make_image):
    a = Generator.objects.create(name="a", checkpoint="a.pt", sha256="0" * 64)
    b = Generator.objects.create(name="b", checkpoint="b.pt", sha256="1" * 64)
    make_image("synthetic", 0, generator=a, seed=1)
    make_image("synthetic", 0, generator=b, seed=2)
    out = tmp_path / "export"
    call_command(
        "export_dicom", "--source", "synthetic", "--generator", "b", "--out", str(out)
    )
    (only,) = out.glob("*.dcm")
    assert "generated by b," in pydicom.dcmread(only).ImageComments
