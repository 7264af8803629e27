import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from PIL import Image as PILImage

from tests.imaging import builders
from turingtest.generation.models import GenerationJob, Generator
from turingtest.imaging import services
from turingtest.imaging.canonical import png_chunks
from turingtest.imaging.models import Image
from turingtest.imaging.services import (
    ImportRefused,
    image_create,
    images_import,
    pool_check,
)

pytestmark = pytest.mark.django_db


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def by_file(outcomes) -> dict[str, str]:
    return {Path(o.file.split(":")[-1]).name: o.reason for o in outcomes}


# --------------------------------------------------------------------------
# image_create
# --------------------------------------------------------------------------


def test_image_create_stores_canonical_png_named_by_hash(media):
    image = image_create(pixels=builders.picture(0), source="real", kl_grade=2)
    assert image.file.name == f"pool/{image.sha256}.png"
    data = (media / image.file.name).read_bytes()
    assert png_chunks(data) == ["IHDR", "IDAT", "IEND"]
    assert (image.width, image.height, image.kl_grade) == (224, 224, 2)
    assert not image.original


def test_image_create_accepts_pil_images_and_keeps_originals(media):
    im = PILImage.fromarray(builders.picture(1)).resize((256, 256))
    raw = builders.png(np.asarray(im))
    image = image_create(
        pixels=im, source="real", kl_grade=0, original_bytes=raw, original_name="a.png"
    )
    assert image.original.name == f"originals/{image.sha256}.png"
    assert (media / image.original.name).read_bytes() == raw


def test_image_create_returns_the_existing_image_for_the_same_content(media):
    generator = Generator.objects.create(name="g", checkpoint="g.pt", sha256="0" * 64)
    job = GenerationJob.objects.create(generator=generator, per_grade={"1": 2}, total=2)
    kw = dict(source="synthetic", kl_grade=1, generator=generator, seed=5, job=job)
    first = image_create(pixels=builders.picture(2), job_index=0, **kw)
    again = image_create(pixels=builders.picture(2), job_index=0, **kw)
    # A retried task whose pixels came out different still finds its slot.
    retry = image_create(pixels=builders.picture(3), job_index=0, **kw)
    assert first.pk == again.pk == retry.pk
    assert Image.objects.count() == 1
    assert pool_check().ok


def test_image_create_leaves_no_file_when_the_row_is_invalid(media):
    with pytest.raises(Exception):  # noqa: B017 - the model says which
        image_create(pixels=builders.picture(4), source="real", kl_grade=9)
    assert Image.objects.count() == 0
    assert not list((media / "pool").glob("*"))


# --------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------


def test_grade_folder_layout(media, tmp_path):
    root = tmp_path / "set"
    for grade in range(5):
        write(
            root / str(grade) / f"k{grade}.png", builders.png(builders.picture(grade))
        )
    result = images_import(root, source="real")
    assert len(result.imported) == 5 and not result.rejected
    grades = {o.file: o.image.kl_grade for o in result.imported}
    assert grades["set/3/k3.png"] == 3
    assert pool_check().ok


def test_dataset_layout_needs_a_split_and_takes_only_that_one(media, tmp_path):
    root = tmp_path / "knee"
    write(root / "train" / "1" / "a.png", builders.png(builders.picture(1)))
    write(root / "test" / "1" / "b.png", builders.png(builders.picture(2)))
    write(root / "test" / "4" / "c.png", builders.png(builders.picture(3)))
    write(root / "README.md", b"# dataset\n")
    with pytest.raises(ImportRefused, match="--split"):
        images_import(root, source="real")
    with pytest.raises(ImportRefused, match="no split 'val'"):
        images_import(root, source="real", split="val")
    result = images_import(root, source="real", split="test")
    assert sorted(o.file for o in result.imported) == [
        "knee/test/1/b.png",
        "knee/test/4/c.png",
    ]
    assert not result.rejected


def test_zip_with_dataset_layout(media, tmp_path):
    archive = tmp_path / "set.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("knee/test/2/a.png", builders.png(builders.picture(1)))
        zf.writestr("knee/test/0/b.jpg", builders.jpeg(builders.picture(2)))
        zf.writestr("__MACOSX/knee/test/0/._b.jpg", b"resource fork")
        zf.writestr("../escape.png", builders.png(builders.picture(3)))
    result = images_import(archive, source="real", split="test")
    assert sorted(o.image.kl_grade for o in result.imported) == [0, 2]
    assert [o.reason for o in result.rejected] == [
        "unsafe path in archive (absolute or with '..')"
    ]


def test_manifest_gives_grades_source_and_notes(media, tmp_path):
    root = tmp_path / "flat"
    write(root / "a.png", builders.png(builders.picture(1)))
    write(root / "b.png", builders.png(builders.picture(2)))
    write(root / "c.png", builders.png(builders.picture(3)))
    manifest = write(
        root / "manifest.csv",
        b"path,kl_grade,source,patient,side,note\n"
        b"a.png,3,,P001,L,\n"
        b"b.png,1,synthetic,,,from partner model\n"
        b"missing.png,2,,,,\n"
        b"c.png,7,,,,\n",
    )
    result = images_import(manifest, source="real")
    imported = {Path(o.file).name: o.image for o in result.imported}
    assert imported["a.png"].kl_grade == 3 and imported["a.png"].source == "real"
    assert "patient=P001" in imported["a.png"].origin
    assert imported["b.png"].source == "synthetic"
    rejected = {Path(o.file.split(": ")[-1]).name: o.reason for o in result.rejected}
    assert rejected["missing.png"] == "listed in the manifest but not found"
    assert "not 0–4" in rejected["c.png"]


def test_manifest_gives_reference_values_on_other_scales(media, tmp_path):
    """A mammography pool: BI-RADS categories and no KL grade; a scale the
    registry does not know keeps its values as given; bad values reject only
    their file, naming the scale and its values."""
    root = tmp_path / "mammo"
    for i, name in enumerate("abcdef"):
        write(root / f"{name}.png", builders.png(builders.picture(20 + i)))
    manifest = write(
        root / "manifest.csv",
        b"path,reference_birads,reference_density,kl_grade\n"
        b"a.png,4,c,\n"
        b"b.png,0,,\n"
        b"c.png,7,,\n"
        b"d.png,,,\n"
        b"e.png,2,,3\n"
        b"f.png,x,,\n",
    )
    result = images_import(manifest, source="real")
    imported = {Path(o.file).name: o for o in result.imported}
    a = imported["a.png"].image
    assert a.kl_grade is None and a.references == {"birads": 4, "density": "c"}
    assert imported["a.png"].reason.startswith("BI-RADS 4, density c, real")
    assert imported["b.png"].image.references == {"birads": 0}
    e = Image.objects.get(pk=imported["e.png"].image.pk)
    assert (e.kl_grade, e.reference("kl"), e.reference("birads")) == (3, 3, 2)
    rejected = {Path(o.file.split(": ")[-1]).name: o.reason for o in result.rejected}
    assert rejected == {
        "c.png": "reference_birads '7' is not a BI-RADS category (0–6)",
        "d.png": "no reference value in its row (kl_grade, reference_<scale>)",
        "f.png": "reference_birads 'x' is not a BI-RADS category (0–6)",
    }

    # The same file with another category: a duplicate that says so.
    again = write(root / "again.csv", b"path,reference_birads\na.png,5\nb.png,0\n")
    second = images_import(again, source="real")
    reasons = by_file(second.duplicates)
    assert reasons["a.png"].endswith(
        "; graded BI-RADS 4, density c there, BI-RADS 5 here"
    )
    assert "graded" not in reasons["b.png"]


@pytest.mark.parametrize(
    "header, message",
    [
        (b"path,reference_Bad Name\n", "'bad name' is not a scale name"),
        (b"path,kl_grade,reference_kl\n", "both kl_grade and reference_kl"),
        (b"path,source\n", "kl_grade or reference_<scale>"),
    ],
)
def test_manifest_with_bad_reference_columns_is_refused(
    media, tmp_path, header, message
):
    manifest = write(tmp_path / "m.csv", header + b"a.png,1\n")
    with pytest.raises(ImportRefused, match=message):
        images_import(manifest, source="real")
    assert not Image.objects.exists()


def test_import_images_gives_every_file_a_reference_on_another_scale(media, tmp_path):
    write(tmp_path / "set" / "a.png", builders.png(builders.picture(40)))
    write(tmp_path / "set" / "b.png", builders.png(builders.picture(41)))
    out = io.StringIO()
    call_command(
        "import_images", str(tmp_path / "set"), "--source", "real",
        "--reference", "birads=2", "--no-progress", stdout=out,
    )  # fmt: skip
    assert "2 imported" in out.getvalue()
    assert {i.reference("birads") for i in Image.objects.all()} == {2}
    with pytest.raises(CommandError, match="--reference 'birads': give SCALE=VALUE"):
        call_command(
            "import_images", str(tmp_path / "set"), "--source", "real",
            "--reference", "birads",
        )  # fmt: skip


def test_reference_values_are_checked_on_the_image(media):
    image = image_create(
        pixels=builders.picture(30),
        source="real",
        kl_grade=None,
        references={"birads": 3},
    )
    image.full_clean()
    for bad, message in [
        ({"birads": 9}, "9 is not a BI-RADS category"),
        ({"kl": 2}, "has its own field"),
        ({"birads": True}, "not a whole number or text"),
        ({"Bad": 1}, "not a scale name"),
    ]:
        image.references = bad
        with pytest.raises(ValidationError, match=message):
            image.full_clean()


def test_manifest_without_required_columns_is_refused(media, tmp_path):
    manifest = write(tmp_path / "m.csv", b"file,grade\na.png,1\n")
    with pytest.raises(ImportRefused, match="kl_grade"):
        images_import(manifest, source="real")


def test_single_file_takes_the_grade_from_its_folder_or_argument(media, tmp_path):
    path = write(tmp_path / "x" / "scan.png", builders.png(builders.picture(1)))
    assert "not a KL grade" in images_import(path, source="real").rejected[0].reason
    result = images_import(path, source="real", grade=4)
    assert result.imported[0].image.kl_grade == 4


def test_duplicates_are_skipped_and_reported(media, tmp_path):
    arr = builders.picture(9)
    root = tmp_path / "set"
    write(root / "1" / "a.png", builders.png(arr))
    write(root / "1" / "same-pixels.tif", builders.tiff(arr))
    result = images_import(root, source="real")
    assert len(result.imported) == 1
    assert "already in the pool" in result.duplicates[0].reason
    again = images_import(root, source="real")
    assert not again.imported and len(again.duplicates) == 2
    assert Image.objects.count() == 1


# --------------------------------------------------------------------------
# Broken files: each rejected with its reason, the rest goes in
# --------------------------------------------------------------------------


def _broken_corpus(root: Path, outside: Path) -> dict[str, str]:
    """Write the corpus; return {file name: expected reason fragment}."""
    good = builders.png(builders.picture(0))
    jpg = builders.jpeg(builders.picture(1))
    g = root / "2"
    write(g / "good.png", good)
    write(g / "good16.png", builders.png16(builders.picture(2)))  # accepted
    write(g / "empty.png", b"")
    write(g / "truncated.png", builders.png(builders.picture(3))[:3000])
    write(g / "truncated.jpg", jpg[: len(jpg) // 2])
    write(g / "text.png", b"hello, this is a text file\n")
    write(g / "bomb.png", builders.png_bomb())
    write(g / "tiny.png", builders.png(np.zeros((1, 1), np.uint8)))
    write(g / "long.png", builders.png(np.zeros((40, 2000), np.uint8)))
    write(g / "cmyk.jpg", builders.jpeg(builders.picture(4), mode="CMYK"))
    write(g / "nopixels.dcm", builders.dicom(None))
    write(g / "mpeg.dcm", builders.dicom_unsupported_syntax(builders.picture(5)))
    write(g / "fake.dcm", b"not dicom " * 100)
    write(outside / "secret.png", builders.png(builders.picture(6)))
    os.symlink(outside / "secret.png", g / "link.png")
    write(root / "7" / "seven.png", builders.png(builders.picture(7)))
    write(root / "x" / "ex.png", builders.png(builders.picture(8)))
    return {
        "empty.png": "empty file",
        "truncated.png": "truncated PNG",
        "truncated.jpg": "truncated JPEG",
        "text.png": "not an image: the file contains text",
        "bomb.png": "decompression bomb",
        "tiny.png": "too small",
        "long.png": "aspect ratio",
        "cmyk.jpg": "CMYK",
        "nopixels.dcm": "without pixel data",
        "mpeg.dcm": "unsupported DICOM transfer syntax",
        "fake.dcm": "not a DICOM file",
        "link.png": "symlink leads outside",
        "seven.png": "grade folder '7' is not a KL grade",
        "ex.png": "folder 'x' is not a KL grade",
    }


def test_broken_files_are_rejected_each_with_its_reason(media, tmp_path):
    expected = _broken_corpus(tmp_path / "corpus", tmp_path / "elsewhere")
    result = images_import(tmp_path / "corpus", source="real")
    assert sorted(by_file(result.imported)) == ["good.png", "good16.png"]
    rejected = by_file(result.rejected)
    assert sorted(rejected) == sorted(expected)
    for name, fragment in expected.items():
        assert fragment in rejected[name], (name, rejected[name])
    assert pool_check().ok
    assert Image.objects.count() == 2


def test_zip_entries_with_dot_dot_or_links_are_rejected(media, tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("1/fine.png", builders.png(builders.picture(1)))
        zf.writestr("../1/escape.png", builders.png(builders.picture(2)))
        link = zipfile.ZipInfo("1/link.png")
        link.external_attr = 0o120777 << 16  # a symlink entry
        zf.writestr(link, "/etc/passwd")
        zf.writestr("1/nested.zip", b"PK\x05\x06" + bytes(18))
    result = images_import(archive, source="real")
    assert by_file(result.imported).keys() == {"fine.png"}
    rejected = by_file(result.rejected)
    assert "unsafe path" in rejected["escape.png"]
    assert "symbolic link" in rejected["link.png"]
    assert "nested archive" in rejected["nested.zip"]
    assert not (tmp_path / "1").exists()


def test_zip_bomb_is_refused_before_anything_is_imported(media, tmp_path, settings):
    settings.TURINGTEST = {**settings.TURINGTEST, "MAX_ARCHIVE_BYTES": 5 * 2**20}
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("1/ok.png", builders.png(builders.picture(1)))
        zf.writestr("1/zeros.dcm", bytes(4 * 2**20))
    with pytest.raises(ImportRefused, match="archive bomb"):
        images_import(archive, source="real")
    assert Image.objects.count() == 0


# --------------------------------------------------------------------------
# Interrupted imports leave rows with files or nothing
# --------------------------------------------------------------------------


@pytest.mark.parametrize("fail_at", [3, 40])
def test_interrupted_import_leaves_no_orphans(media, tmp_path, monkeypatch, fail_at):
    root = tmp_path / "set"
    for i in range(45):
        write(root / "1" / f"{i:02d}.png", builders.png(builders.picture(100 + i)))
    calls = {"n": 0}
    real_save = Image.save

    def flaky_save(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == fail_at:
            raise KeyboardInterrupt
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(Image, "save", flaky_save)
    with pytest.raises(KeyboardInterrupt):
        images_import(root, source="real")
    # Whole batches went in before the interrupt; the broken one left nothing.
    committed = Image.objects.count()
    assert committed == (fail_at - 1) // services.BATCH_SIZE * services.BATCH_SIZE
    check = pool_check()
    assert check.ok, check
    assert len(list((media / "pool").iterdir())) == committed

    monkeypatch.setattr(Image, "save", real_save)
    result = images_import(root, source="real")
    assert len(result.imported) == 45 - committed
    assert len(result.duplicates) == committed


def test_an_unexpected_decoder_error_rejects_only_that_file(
    media, tmp_path, monkeypatch
):
    root = tmp_path / "set"
    for i in range(4):
        write(root / "1" / f"{i}.png", builders.png(builders.picture(200 + i)))
    real_decode = services.decode
    calls = {"n": 0}

    def failing_decode(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("codec crashed")
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(services, "decode", failing_decode)
    result = images_import(root, source="real")
    assert len(result.imported) == 3
    assert result.rejected[0].reason == "cannot decode: codec crashed"


@pytest.mark.parametrize("all_or_nothing", [False, True])
def test_a_failure_part_way_keeps_whole_images_or_takes_them_back(
    media, tmp_path, monkeypatch, django_capture_on_commit_callbacks, all_or_nothing
):
    root = tmp_path / "set"
    for i in range(3):
        write(root / "2" / f"{i}.png", builders.png(builders.picture(300 + i)))
    real_save = services._pending_save
    stored = {"n": 0}

    def save_then_fail(pending):
        stored["n"] += 1
        if stored["n"] == 3:
            raise RuntimeError("database gone")
        return real_save(pending)

    monkeypatch.setattr(services, "_pending_save", save_then_fail)
    monkeypatch.setattr(services, "BATCH_SIZE", 2)
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError, match="database gone"):
            images_import(root, source="real", all_or_nothing=all_or_nothing)
    assert Image.objects.count() == (0 if all_or_nothing else 2)
    assert pool_check().ok


# --------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------


def test_import_images_command_prints_summary_and_exit_status(media, tmp_path):
    root = tmp_path / "set"
    write(root / "1" / "a.png", builders.png(builders.picture(1)))
    write(root / "1" / "bad.png", b"")
    out = io.StringIO()
    call_command(
        "import_images", str(root), "--source", "real", stdout=out, stderr=io.StringIO()
    )
    text = out.getvalue()
    assert "1 imported, 0 duplicates skipped, 1 rejected" in text
    assert "bad.png: empty file" in text

    only_bad = tmp_path / "bad"
    write(only_bad / "1" / "x.png", b"junk")
    with pytest.raises(CommandError, match="nothing could be imported"):
        call_command(
            "import_images",
            str(only_bad),
            "--source",
            "real",
            stdout=io.StringIO(),
            stderr=io.StringIO(),
        )
    # Only duplicates: nothing new, but nothing wrong either.
    call_command(
        "import_images",
        str(root / "1" / "a.png"),
        "--source",
        "real",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )


def test_import_images_command_with_generator(media, tmp_path):
    Generator.objects.create(name="wgan", checkpoint="w.pt", sha256="0" * 64)
    root = tmp_path / "syn"
    write(root / "0" / "a.png", builders.png(builders.picture(1)))
    call_command(
        "import_images",
        str(root),
        "--source",
        "synthetic",
        "--generator",
        "wgan",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    assert Image.objects.get().generator.name == "wgan"
    with pytest.raises(CommandError, match="only be given for synthetic"):
        call_command(
            "import_images",
            str(root),
            "--source",
            "real",
            "--generator",
            "wgan",
            stdout=io.StringIO(),
            stderr=io.StringIO(),
        )


def test_orphan_sweep_removes_only_old_unreferenced_files(media, tmp_path):
    import time

    from turingtest.imaging.services import pool_orphans_remove

    image = image_create(pixels=builders.picture(1), source="real", kl_grade=1)
    old = write(media / "pool" / ("a" * 64 + ".png"), b"left by a killed import")
    young = write(media / "pool" / ("b" * 64 + ".png"), b"an import still running")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    assert pool_check().orphan_files == [f"pool/{old.name}", f"pool/{young.name}"]

    assert pool_orphans_remove() == [f"pool/{old.name}"]
    assert not old.exists() and young.exists()
    assert (media / image.file.name).exists()
