import io
import random
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.template.loader import render_to_string
from PIL import Image as PILImage
from PIL.PngImagePlugin import PngInfo

from tests.imaging import builders
from turingtest.imaging.audit import (
    audit_images,
    audit_study,
    image_statistics,
)
from turingtest.imaging.models import Image
from turingtest.imaging.services import images_import
from turingtest.studies.models import Case, Study

KNEE_KL = Path(django_settings.BASE_DIR).parent / "shared" / "data" / "knee-kl"


def test_noise_estimate_recovers_gaussian_noise_on_a_smooth_image():
    rng = np.random.default_rng(2)
    ramp = np.add.outer(np.linspace(0, 80, 224), np.linspace(20, 120, 224))
    for sigma in (2.0, 8.0):
        noisy = ramp + rng.normal(0, sigma, ramp.shape)
        assert image_statistics(noisy)["noise sigma"] == pytest.approx(sigma, rel=0.05)


def _surface_variants(arr: np.ndarray, i: int) -> tuple[str, bytes]:
    """Synthetic files made different from the real ones on the surface."""
    kind = i % 3
    if kind == 0:
        big = np.asarray(PILImage.fromarray(arr).resize((320, 320)))
        info = PngInfo()
        info.add_text("Software", "wgan-gp sampler 1.0")
        return "png", builders.png(big, pnginfo=info)
    if kind == 1:
        return "jpg", builders.rgb_jpeg_with_exif(arr)
    return "png", builders.png16(arr)


def _write_sets(tmp_path: Path, reals: list[bytes], fakes: list[np.ndarray]):
    real_dir, syn_dir = tmp_path / "real", tmp_path / "synthetic"
    for i, data in enumerate(reals):
        target = real_dir / str(i % 5) / f"r{i}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    for i, arr in enumerate(fakes):
        ext, data = _surface_variants(arr, i)
        target = syn_dir / str(i % 5) / f"s{i}.{ext}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return real_dir, syn_dir


def _study_of(images, slug="audit") -> Study:
    study = Study.objects.create(name=slug, slug=slug, seed=11)
    order = list(images)
    random.Random(3).shuffle(order)
    for number, image in enumerate(order, start=1):
        Case.objects.create(study=study, image=image, number=number, role="main")
    return study


def _import_both(real_dir, syn_dir, *, canonical: bool):
    real = images_import(real_dir, source="real", canonical=canonical)
    syn = images_import(syn_dir, source="synthetic", canonical=canonical)
    assert not real.rejected and not syn.rejected, (real.rejected, syn.rejected)
    return [o.image for o in real.imported + syn.imported]


@pytest.mark.django_db
def test_canonical_pool_hides_the_surface_and_the_audit_passes(media, tmp_path):
    reals = [builders.png(builders.picture(i)) for i in range(15)]
    fakes = [builders.picture(1000 + i) for i in range(15)]
    images = _import_both(*_write_sets(tmp_path, reals, fakes), canonical=True)
    result = audit_images(images, seed=1)
    file_level = result.file_level
    assert (file_level.auc, file_level.ci_low, file_level.ci_high) == (0.5, 0.5, 0.5)
    assert file_level.passed and result.passed
    assert file_level.n_real == file_level.n_synthetic == 15


@pytest.mark.django_db
def test_without_canonical_form_the_audit_fails(media, tmp_path):
    reals = [builders.png(builders.picture(i)) for i in range(15)]
    fakes = [builders.picture(1000 + i) for i in range(15)]
    images = _import_both(*_write_sets(tmp_path, reals, fakes), canonical=False)
    study = _study_of(images)
    result = audit_study(study)
    assert result.file_level.auc > 0.9 and result.file_level.ci_low > 0.5
    assert not result.passed
    with pytest.raises(CommandError, match="file-level cues separate"):
        call_command("audit_blinding", study.slug, stdout=io.StringIO())
    html = render_to_string("imaging/_audit.html", {"audit": result})
    assert "Warning" in html and "FAIL" in html


@pytest.mark.django_db
def test_audit_command_passes_and_reports_image_statistics(media, make_image):
    images = [make_image(src, g) for g in range(5) for src in ("real", "synthetic")]
    images += [make_image(src, g) for g in range(5) for src in ("real", "synthetic")]
    study = _study_of(images, slug="phantoms")
    out = io.StringIO()
    call_command("audit_blinding", "phantoms", stdout=out)
    text = out.getvalue()
    assert "File-level cues: AUC 0.500 (95% CI 0.500–0.500)" in text
    assert "Image statistics: AUC" in text
    html = render_to_string("imaging/_audit.html", {"audit": audit_study(study)})
    assert "Warning" not in html and "at chance" in html


@pytest.mark.django_db
def test_audit_command_refuses_a_study_without_both_sources(media, make_image):
    study = _study_of([make_image("real", 0), make_image("real", 1)], slug="onesided")
    with pytest.raises(CommandError, match="at least two real and two synthetic"):
        call_command("audit_blinding", study.slug, stdout=io.StringIO())


def _knee_subset(per_grade: int, offset: int) -> list[Path]:
    files = []
    for grade in range(5):
        names = sorted((KNEE_KL / "test" / str(grade)).glob("*.png"))
        files += names[offset : offset + per_grade]
    return files


@pytest.mark.slow
@pytest.mark.django_db
def test_real_knee_radiographs_against_surface_different_synthetic_files(
    media, tmp_path
):
    if not (KNEE_KL / "test").is_dir():
        pytest.skip("../shared/data/knee-kl is not here")
    real_files = _knee_subset(12, 0)
    # Stand-ins for a generator's output: other real knees, saved differently.
    fake_files = _knee_subset(9, 12)
    reals = [p.read_bytes() for p in real_files]
    fakes = [np.asarray(PILImage.open(p).convert("L")) for p in fake_files]
    real_dir, syn_dir = _write_sets(tmp_path / "on", reals, fakes)

    images = _import_both(real_dir, syn_dir, canonical=True)
    assert len(images) == len(real_files) + len(fake_files)
    study = _study_of(images, slug="knees")
    result = audit_study(study)
    assert result.file_level.ci_low <= 0.5 <= result.file_level.ci_high
    assert result.file_level.auc <= 0.6 and result.passed

    # The reverse: the same files kept as they came give themselves away.
    Case.objects.all().delete()
    Image.objects.all().delete()
    real_dir, syn_dir = _write_sets(tmp_path / "off", reals, fakes)
    images = _import_both(real_dir, syn_dir, canonical=False)
    _study_of(images, slug="knees-raw")
    out = io.StringIO()
    with pytest.raises(CommandError, match="file-level cues separate"):
        call_command("audit_blinding", "knees-raw", stdout=out)
    assert "FAIL" in out.getvalue()
