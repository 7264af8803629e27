import io

import numpy as np
import pytest
from PIL import Image as PILImage

from tests.imaging import builders
from turingtest.imaging.canonical import (
    CanonicalSpec,
    canonicalise,
    png_chunks,
    png_encode,
)
from turingtest.imaging.decode import decode


def pixels_of(png: bytes) -> np.ndarray:
    return np.asarray(PILImage.open(io.BytesIO(png)))


def test_png_has_only_ihdr_idat_iend_and_reads_back():
    arr = builders.picture(0)
    data = png_encode(arr)
    assert png_chunks(data) == ["IHDR", "IDAT", "IEND"]
    with PILImage.open(io.BytesIO(data)) as im:
        assert (im.mode, im.size, im.info) == ("L", (224, 224), {})
        np.testing.assert_array_equal(np.asarray(im), arr)


def test_byte_size_depends_on_dimensions_only():
    smooth = np.full((224, 224), 128, dtype=np.uint8)
    noisy = np.random.default_rng(0).integers(0, 256, (224, 224), dtype=np.uint8)
    assert len(png_encode(smooth)) == len(png_encode(noisy))


@pytest.mark.parametrize(
    "surface",
    [
        lambda a: builders.png(a),
        lambda a: builders.png(a, pnginfo=_text_chunk()),
        lambda a: builders.png16(a),
        lambda a: builders.png(a, mode="RGB"),
        lambda a: builders.png(a, mode="P"),
        lambda a: builders.tiff(a),
        lambda a: builders.dicom(a),
    ],
    ids=["png", "png-text", "png16", "png-rgb", "png-palette", "tiff", "dicom"],
)
def test_lossless_surfaces_give_identical_canonical_files(surface):
    arr = builders.picture(3)
    reference = canonicalise(arr)
    canon = canonicalise(decode(surface(arr)).pixels)
    assert canon.png == reference.png
    assert canon.sha256 == reference.sha256


def _text_chunk():
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Software", "generator v2")
    return info


def test_rgb_jpeg_with_exif_loses_the_exif_and_colour():
    arr = builders.picture(4)
    canon = canonicalise(decode(builders.rgb_jpeg_with_exif(arr)).pixels)
    assert png_chunks(canon.png) == ["IHDR", "IDAT", "IEND"]
    assert b"Camera Maker" not in canon.png
    assert np.abs(pixels_of(canon.png).astype(int) - arr).mean() < 3


def test_other_sizes_are_resized_and_centre_cropped():
    arr = builders.picture(5, size=(300, 400))
    canon = canonicalise(arr, CanonicalSpec(size=224, fit="crop"))
    assert (canon.width, canon.height) == (224, 224)
    # The crop keeps the middle: compare with a plain Pillow resize + crop.
    ref = PILImage.fromarray(arr).resize((299, 224), PILImage.Resampling.LANCZOS)
    ref = np.asarray(ref)[:, 37 : 37 + 224].astype(int)
    assert np.abs(pixels_of(canon.png).astype(int) - ref).mean() < 1.5


def test_pad_keeps_the_whole_image_on_black():
    arr = np.full((100, 200), 200, dtype=np.uint8)
    canon = canonicalise(arr, CanonicalSpec(size=64, fit="pad"))
    out = pixels_of(canon.png)
    assert out.shape == (64, 64)
    assert out[:10].max() == 0 and out[-10:].max() == 0
    assert abs(int(out[32, 32]) - 200) <= 1


def test_percentile_normalisation_stretches_both_sources_alike():
    dark = (builders.picture(6).astype(float) * 0.3).astype(np.uint8)
    spec = CanonicalSpec(normalise="percentile", low=1, high=99)
    out = pixels_of(canonicalise(dark, spec).png)
    assert np.percentile(out, 1) <= 1 and np.percentile(out, 99) >= 254


def test_same_pixels_same_name():
    arr = builders.picture(7)
    assert canonicalise(arr).sha256 == canonicalise(arr.copy()).sha256
    assert canonicalise(arr).sha256 != canonicalise(builders.picture(8)).sha256


def test_spec_refuses_unknown_options():
    with pytest.raises(ValueError):
        CanonicalSpec(fit="stretch")


def test_exif_orientation_is_applied_before_canonical_form():
    arr = builders.picture(9, size=(224, 300))
    exif = PILImage.Exif()
    exif[0x0112] = 6  # stored rotated: display needs 90° clockwise
    decoded = decode(builders.jpeg(arr, exif=exif.tobytes()))
    assert decoded.pixels.shape == (300, 224)
    assert "EXIF orientation 6 applied" in decoded.notes
    upright = np.rot90(arr, k=-1).astype(float)
    assert np.abs(decoded.pixels - upright).mean() < 3
