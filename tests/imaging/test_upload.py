import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from tests.imaging import builders
from turingtest.imaging.models import Image, ImportBatch
from turingtest.imaging.services import pool_check

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.imaging.urls")]


@pytest.fixture
def upload_tmp(settings, tmp_path, monkeypatch):
    """Where uploads and the import's temporary folder go, to check it empties."""
    import tempfile

    folder = tmp_path / "uploads-tmp"
    folder.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(folder)
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def png_upload(name: str, seed: int) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, builders.png(builders.picture(seed)), "image/png")


def zip_upload(name: str, entries: dict[str, bytes]) -> SimpleUploadedFile:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for entry, data in entries.items():
            zf.writestr(entry, data)
    return SimpleUploadedFile(name, buf.getvalue(), "application/zip")


def test_only_staff_can_open_the_upload_page(client, django_user_model):
    url = reverse("imaging:upload")
    assert client.get(url).status_code == 302
    user = django_user_model.objects.create_user("r", "r@example.org", "pw-r-12345")
    client.force_login(user)
    assert client.get(url).status_code == 302
    assert Image.objects.count() == 0


def test_staff_uploads_files_with_a_grade(staff_client, media, upload_tmp):
    url = reverse("imaging:upload")
    page = staff_client.get(url)
    assert page.status_code == 200 and b"Upload and import" in page.content
    response = staff_client.post(
        url,
        {
            "files": [png_upload("a.png", 1), png_upload("b.png", 2)],
            "source": "real",
            "grade": "3",
        },
    )
    assert response.status_code == 200
    assert b"2 imported, 0 duplicates skipped, 0 rejected" in response.content
    assert sorted(Image.objects.values_list("kl_grade", flat=True)) == [3, 3]
    assert "upload by staff@example.org" in Image.objects.first().origin
    assert not any(upload_tmp.iterdir())


def test_an_upload_is_a_named_batch_with_tags(staff_client, media, upload_tmp):
    url = reverse("imaging:upload")
    form = {"source": "real", "grade": "2", "batch": "ward 3", "tags": "curated, kl2"}
    response = staff_client.post(url, form | {"files": [png_upload("a.png", 1)]})
    assert response.status_code == 200
    assert "import batch &#x27;ward 3&#x27;" in response.content.decode()
    batch = ImportBatch.objects.get(name="ward 3")
    assert batch.created_by.username == "staff@example.org"
    assert batch.description == "upload by staff@example.org: single files"
    image = Image.objects.get()
    assert image.batch == batch
    assert sorted(image.tags.values_list("name", flat=True)) == ["curated", "kl2"]

    # Uploading under the same name adds to the batch; without a name, the
    # upload is a batch of its own.
    staff_client.post(url, form | {"files": [png_upload("b.png", 2)]})
    assert batch.images.count() == 2
    staff_client.post(
        url, {"source": "real", "grade": "2", "files": [png_upload("c.png", 3)]}
    )
    other = Image.objects.exclude(batch=batch).get()
    assert other.batch.name.startswith("upload by staff@example.org 20")

    # A bad tag is refused before anything is imported.
    bad = staff_client.post(
        url, form | {"tags": "no good", "files": [png_upload("d.png", 4)]}
    )
    assert bad.status_code == 400
    assert Image.objects.count() == 3


def test_zip_upload_shows_rejected_files_and_imports_the_rest(
    staff_client, media, upload_tmp
):
    archive = zip_upload(
        "set.zip",
        {
            "0/a.png": builders.png(builders.picture(1)),
            "4/b.jpg": builders.jpeg(builders.picture(2)),
            "x/c.png": builders.png(builders.picture(3)),
            "../2/d.png": builders.png(builders.picture(4)),
        },
    )
    response = staff_client.post(
        reverse("imaging:upload"), {"files": [archive], "source": "synthetic"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "2 imported, 0 duplicates skipped, 2 rejected" in html
    assert "folder &#x27;x&#x27; is not a KL grade" in html
    assert "unsafe path in archive" in html
    assert Image.objects.filter(source="synthetic").count() == 2


def test_a_zip_with_a_manifest_brings_reference_values_on_any_scale(
    staff_client, media, upload_tmp
):
    """A mammography set uploaded from the admin: its manifest.csv gives each
    image's BI-RADS category; a file it does not list is left out, as a
    manifest beside a folder chooses its images."""
    archive = zip_upload(
        "mammo.zip",
        {
            "manifest.csv": b"path,reference_birads\nimg/a.png,4\nimg/b.png,1\n",
            "img/a.png": builders.png(builders.picture(11)),
            "img/b.png": builders.png(builders.picture(12)),
            "img/c.png": builders.png(builders.picture(13)),
        },
    )
    response = staff_client.post(
        reverse("imaging:upload"), {"files": [archive], "source": "real"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "2 imported, 0 duplicates skipped, 0 rejected" in html
    assert "BI-RADS 4, real" in html
    assert sorted((i.reference("birads"), i.kl_grade) for i in Image.objects.all()) == [
        (1, None),
        (4, None),
    ]


def test_a_zip_of_one_folder_finds_its_manifest_and_single_files_take_a_reference(
    staff_client, media, upload_tmp
):
    archive = zip_upload(
        "wrapped.zip",
        {
            "mammo/manifest.csv": b"path,reference_birads\nimg/a.png,3\n",
            "mammo/img/a.png": builders.png(builders.picture(14)),
        },
    )
    url = reverse("imaging:upload")
    first = staff_client.post(url, {"files": [archive], "source": "real"})
    assert "1 imported" in first.content.decode()
    assert Image.objects.get().references == {"birads": 3}

    def single(reference):
        return {
            "files": [png_upload("m.png", 15)],
            "source": "real",
            "reference": reference,
        }

    refused = staff_client.post(url, single("birads=9"))
    assert refused.status_code == 400
    assert "is not a BI-RADS category (0–6)" in refused.content.decode()
    taken = staff_client.post(url, single("birads=5"))
    assert "BI-RADS 5, real" in taken.content.decode()
    assert Image.objects.filter(kl_grade=None, references={"birads": 5}).count() == 1


def test_single_files_need_a_grade(staff_client, media, upload_tmp):
    response = staff_client.post(
        reverse("imaging:upload"), {"files": [png_upload("a.png", 1)], "source": "real"}
    )
    assert response.status_code == 400
    assert b"Choose a KL grade" in response.content
    assert Image.objects.count() == 0 and not any(upload_tmp.iterdir())


def test_oversize_upload_is_refused_before_reading(
    staff_client, media, settings, upload_tmp
):
    settings.TURINGTEST = {**settings.TURINGTEST, "MAX_UPLOAD_BYTES": 20_000}
    response = staff_client.post(
        reverse("imaging:upload"),
        {"files": [png_upload("a.png", 1)], "source": "real", "grade": "1"},
    )
    assert response.status_code == 413
    assert b"larger than the limit" in response.content
    assert Image.objects.count() == 0


def test_the_upload_handler_stops_a_body_that_grows_past_the_limit(rf):
    from django.core.files.uploadhandler import StopUpload

    from turingtest.imaging.admin_views import SizeLimitUploadHandler

    # Defence in depth where Content-Length cannot be trusted (a proxy that
    # rewrites it): the handler counts what actually arrives.
    guard = SizeLimitUploadHandler(rf.post("/"), limit=1000)
    assert guard.receive_data_chunk(b"x" * 600, 0) == b"x" * 600
    with pytest.raises(StopUpload):
        guard.receive_data_chunk(b"x" * 600, 600)
    assert guard.exceeded


def test_archive_bomb_upload_leaves_nothing_behind(
    staff_client, media, settings, upload_tmp
):
    settings.TURINGTEST = {**settings.TURINGTEST, "MAX_ARCHIVE_RATIO": 100}
    good = zip_upload("good.zip", {"1/a.png": builders.png(builders.picture(1))})
    bomb = zip_upload("bomb.zip", {"1/zeros.dcm": bytes(8 * 2**20)})
    response = staff_client.post(
        reverse("imaging:upload"), {"files": [good, bomb], "source": "real"}
    )
    assert response.status_code == 400
    assert b"archive bomb" in response.content
    assert Image.objects.count() == 0
    assert pool_check().ok and not (media / "pool").exists()
    assert not any(upload_tmp.iterdir())


def test_a_failing_upload_takes_back_what_it_imported(
    staff_client, media, upload_tmp, monkeypatch, django_capture_on_commit_callbacks
):
    from turingtest.imaging import admin_views

    real_import = admin_views.images_import
    calls = {"n": 0}

    def import_then_fail(path, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker lost")
        return real_import(path, **kwargs)

    monkeypatch.setattr(admin_views, "images_import", import_then_fail)
    first = zip_upload("one.zip", {"1/a.png": builders.png(builders.picture(1))})
    second = zip_upload("two.zip", {"1/b.png": builders.png(builders.picture(2))})
    staff_client.raise_request_exception = False
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            reverse("imaging:upload"), {"files": [first, second], "source": "real"}
        )
    assert response.status_code == 500
    assert Image.objects.count() == 0
    assert not ImportBatch.objects.exists()  # no empty batch is left behind
    assert pool_check().ok
    assert not any(upload_tmp.iterdir())


MEMORY_PROBE = """
import json, resource, sys
from turingtest.imaging.canonical import CanonicalSpec, canonicalise
from turingtest.imaging.decode import Limits, decode
from tests.imaging import builders

small = builders.png(builders.picture(1))
canonicalise(decode(small, limits=Limits()).pixels, CanonicalSpec())  # warm up
data = open(sys.argv[1], "rb").read()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
decoded = decode(data, limits=Limits())
canon = canonicalise(decoded.pixels, CanonicalSpec())
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"grew_kib": after - before, "notes": decoded.notes,
                  "size": [canon.width, canon.height]}))
"""


def test_a_small_file_with_huge_dimensions_has_bounded_memory(tmp_path):
    """A 6000×6000 colour PNG of a few hundred KB: decoding and canonicalising
    it must cost a bounded number of bytes a pixel, not the 40+ of float64
    colour channels (it once took a worker from 245 MB to 1.77 GB)."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    side = 6000
    path = tmp_path / "huge.png"
    path.write_bytes(builders.png_rgba_large(side))
    assert path.stat().st_size < 400_000
    root = Path(__file__).resolve().parents[2]
    # A fresh process: its peak resident size is this image's and nothing else's.
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(path)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout.strip().splitlines()[-1])
    assert seen["size"] == [224, 224]
    assert "colour converted to gray (BT.601 luma)" in seen["notes"]
    bytes_per_pixel = seen["grew_kib"] * 1024 / side**2
    # The decoded RGBA image (4), the gray float64 result (8), and bands.
    assert bytes_per_pixel < 16, f"{bytes_per_pixel:.1f} bytes a pixel"


@pytest.mark.parametrize("grade", ["", "2"])
@pytest.mark.parametrize("keep", [0.3, 0.9, 0.999])
def test_a_truncated_zip_is_reported_as_a_damaged_archive(
    staff_client, media, upload_tmp, grade, keep
):
    whole = zip_upload(
        "set.zip", {f"1/{n}.png": builders.png(builders.picture(n)) for n in range(4)}
    ).read()
    cut = SimpleUploadedFile("set.zip", whole[: int(len(whole) * keep)])
    response = staff_client.post(
        reverse("imaging:upload"), {"files": [cut], "source": "real", "grade": grade}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "set.zip is a damaged archive" in html and "nothing was imported" in html
    assert "0 imported" not in html and "Choose a KL grade" not in html
    assert Image.objects.count() == 0 and not any(upload_tmp.iterdir())


def test_an_upload_with_no_images_says_so(staff_client, media, upload_tmp):
    empty = zip_upload("notes.zip", {"README.txt": b"nothing here"})
    response = staff_client.post(
        reverse("imaging:upload"), {"files": [empty], "source": "real"}
    )
    assert response.status_code == 400
    assert b"holds no image files" in response.content
