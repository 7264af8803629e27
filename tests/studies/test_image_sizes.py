"""Pool images of any size: each import and each study sets its canonical size."""

import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from PIL import Image as PILImage

from turingtest.imaging.models import Image, ImportBatch
from turingtest.imaging.phantom import phantom_dataset
from turingtest.studies import services
from turingtest.studies.models import Study

LARGE = 96  # stands for a chest or mammography size; small enough to be quick


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def large_pool(db, media, tmp_path):
    """Four real and two synthetic phantoms per KL grade, imported at LARGE px."""
    for source, per_grade, seed in (("real", 4, 1), ("synthetic", 2, 2)):
        folder = tmp_path / source
        phantom_dataset(folder, per_grade=per_grade, size=150, seed=seed)
        run(
            "import_images", str(folder), "--source", source, "--size", str(LARGE),
            "--batch", f"large-{source}", "--no-progress",
        )  # fmt: skip
    return Image.objects.filter(width=LARGE)


def test_import_stores_images_at_the_size_asked_and_the_default_otherwise(
    large_pool, pool
):
    assert large_pool.count() == 30
    assert set(Image.objects.values_list("width", "height")) == {
        (LARGE, LARGE),
        (224, 224),
    }
    stored = large_pool.first()
    with stored.file.open("rb") as fh, PILImage.open(fh) as img:
        assert img.size == (LARGE, LARGE)


def test_a_study_draws_only_images_of_its_own_size(large_pool, pool):
    out = run(
        "create_study", "chest", "--name", "Chest", "--image-size", str(LARGE)
    )  # fmt: skip
    assert f"{LARGE} px images" in out
    study = Study.objects.get(slug="chest")
    run("build_cases", "chest", "--per-grade", "2", "--practice", "2", "--seed", "1")
    sizes = set(study.cases.values_list("image__width", "image__height"))
    assert sizes == {(LARGE, LARGE)}
    # the default-size study beside it takes none of them
    run("create_study", "knee", "--name", "Knee")
    run("build_cases", "knee", "--per-grade", "2", "--practice", "0", "--seed", "1")
    knee = Study.objects.get(slug="knee")
    assert knee.image_size == 224
    assert set(knee.cases.values_list("image__width", flat=True)) == {224}


def test_too_few_images_of_the_size_is_refused_naming_the_other_sizes(pool):
    study = services.study_create(slug="big", name="Big", image_size=512)
    with pytest.raises(ValidationError) as caught:
        services.cases_build(study=study, per_grade=1, seed=1, practice=0)
    message = " ".join(caught.value.messages)
    assert "512×512 px" in message and f"{len(pool)} images of other sizes" in message
    assert not study.cases.exists()


def test_a_study_whose_size_changed_after_its_cases_does_not_open(make_study):
    study = make_study(open=False)
    Study.objects.filter(pk=study.pk).update(image_size=LARGE)
    study.refresh_from_db()
    with pytest.raises(ValidationError, match=f"not {LARGE}×{LARGE} px"):
        services.study_open(study=study)
    assert Study.objects.get(pk=study.pk).status == Study.Status.DRAFT


def test_readers_get_the_study_size_through_the_api(large_pool, make_reader, client):
    study = services.study_create(slug="chest", name="Chest", image_size=LARGE)
    services.cases_build(study=study, per_grade=1, seed=3, practice=1)
    study = services.study_open(study=study)
    enrollment = make_reader(study)
    client.force_login(enrollment.reader.user)
    services.enrollment_consent(enrollment=enrollment)
    step = client.get(f"/api/v1/studies/{study.slug}/next").json()
    reply = client.get(step["image"])
    assert reply.status_code == 200
    with PILImage.open(io.BytesIO(b"".join(reply.streaming_content))) as img:
        assert img.size == (LARGE, LARGE)


@pytest.mark.parametrize("size", ["4", "0", "-3"])
def test_a_bad_size_is_an_error_and_imports_nothing(db, media, tmp_path, size):
    phantom_dataset(tmp_path / "p", per_grade=1, size=64, seed=0)
    with pytest.raises(CommandError, match="at least 8"):
        run(
            "import_images", str(tmp_path / "p"), "--source", "real", "--size", size,
            "--batch", "bad", "--no-progress",
        )  # fmt: skip
    assert not Image.objects.exists() and not ImportBatch.objects.exists()
    with pytest.raises(CommandError, match="8"):
        run("create_study", "s", "--name", "S", "--image-size", size)
    assert not Study.objects.exists()
