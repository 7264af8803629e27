"""Import batches, tags and the choice of images a study's cases are drawn from."""

import io

import pytest
from django.core.management import CommandError, call_command

from turingtest.generation.models import Generator
from turingtest.imaging.models import Image, ImportBatch
from turingtest.imaging.phantom import phantom_dataset
from turingtest.studies.models import Case


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def import_phantoms(tmp_path, name: str, *, per_grade: int, seed: int, extra=()):
    folder = tmp_path / name
    phantom_dataset(folder, per_grade=per_grade, size=64, seed=seed)
    return run(
        "import_images", str(folder), "--source", "real", "--no-progress", *extra
    )[0]


@pytest.fixture
def generators(make_image):
    """Two generators with two synthetic images per KL grade each."""
    made = {}
    for name in ("new-gan", "old-gan"):
        gen = Generator.objects.create(name=name, checkpoint="x.pt", sha256="0" * 64)
        made[name] = [
            make_image("synthetic", grade, generator=gen, seed=grade * 10 + k)
            for grade in range(5)
            for k in range(2)
        ]
    return made


@pytest.fixture
def batches(db, media, tmp_path):
    """Real images in two named batches: 'oai' (3 per grade, two tagged
    'curated' by a second import) and 'phantoms' (2 per grade)."""
    import_phantoms(tmp_path, "oai", per_grade=3, seed=1, extra=["--batch", "oai"])
    import_phantoms(
        tmp_path, "phantoms", per_grade=2, seed=2, extra=["--batch", "phantoms"]
    )
    return {b.name: b for b in ImportBatch.objects.all()}


def main_cases(slug: str, source: str):
    return Case.objects.filter(
        study__slug=slug, role=Case.Role.MAIN, image__source=source
    ).select_related("image__batch", "image__generator")


def test_import_records_named_and_default_batches(db, media, tmp_path):
    out = import_phantoms(
        tmp_path, "first", per_grade=1, seed=1, extra=["--batch", "site A"]
    )
    assert "5 imported" in out and "import batch 'site A'" in out
    batch = ImportBatch.objects.get(name="site A")
    assert batch.images.count() == 5
    assert "import_images" in batch.description

    # Without --batch: named after the folder and the time.
    import_phantoms(tmp_path, "second", per_grade=1, seed=2)
    (default,) = ImportBatch.objects.exclude(name="site A")
    assert default.name.startswith("second 20") and default.images.count() == 5

    # The same files again: duplicates keep their first batch, and no empty
    # batch is left behind.
    out = import_phantoms(tmp_path, "second", per_grade=1, seed=2)
    assert "0 imported, 5 duplicates" in out
    assert ImportBatch.objects.count() == 2

    # Tags go on duplicates too; a bad tag stops the import before any file.
    import_phantoms(tmp_path, "second", per_grade=1, seed=2, extra=["--tag", "curated"])
    assert Image.objects.filter(tags__name="curated").count() == 5
    with pytest.raises(CommandError, match="tag 'no good'"):
        import_phantoms(
            tmp_path, "third", per_grade=1, seed=3, extra=["--tag", "no good"]
        )
    assert Image.objects.count() == 10


def test_build_cases_draws_only_from_the_chosen_batch_and_generator(
    batches, generators
):
    run("create_study", "chosen", "--name", "Chosen")
    out, err = run(
        "build_cases", "chosen", "--per-grade", "2", "--seed", "5",
        "--practice", "3", "--real-from", "oai", "--generator", "new-gan",
    )  # fmt: skip
    assert "20 main cases, 3 practice" in out
    assert "real: 10 from batch oai" in out
    assert "synthetic: 10 from generator new-gan" in out
    assert err == ""
    assert {c.image.batch.name for c in main_cases("chosen", "real")} == {"oai"}
    assert {c.image.generator.name for c in main_cases("chosen", "synthetic")} == {
        "new-gan"
    }
    practice = Case.objects.filter(study__slug="chosen", role=Case.Role.PRACTICE)
    assert {c.image.batch.name for c in practice} == {"oai"}

    # Without a choice the command says where the cases came from, so a mix
    # is visible at once.
    run("create_study", "mixed", "--name", "Mixed")
    out, _ = run(
        "build_cases", "mixed", "--per-grade", "4", "--seed", "5", "--practice", "0"
    )
    assert "real: " in out and "from batch oai" in out and "from batch phantoms" in out


def test_build_cases_real_from_a_tag(batches, generators, tmp_path):
    # Two KL grades of the phantom batch are tagged 'curated' by importing
    # them again with the tag.
    for grade in ("0", "1"):
        folder = tmp_path / "phantoms" / grade
        run(
            "import_images", str(folder), "--source", "real", "--grade", grade,
            "--tag", "curated", "--no-progress",
        )  # fmt: skip
    run("create_study", "tagged", "--name", "Tagged")
    run(
        "build_cases", "tagged", "--per-grade", "2", "--seed", "1", "--grades", "0,1",
        "--practice", "0", "--real-from", "curated",
    )  # fmt: skip
    real = main_cases("tagged", "real")
    assert real.count() == 4
    assert all(c.image.tags.filter(name="curated").exists() for c in real)
    assert {c.image.batch.name for c in real} == {"phantoms"}


def test_build_cases_refuses_a_cell_the_choice_cannot_fill(batches, generators):
    run("create_study", "short", "--name", "Short")
    with pytest.raises(CommandError) as refused:
        run(
            "build_cases", "short", "--per-grade", "3", "--seed", "1",
            "--practice", "0", "--real-from", "phantoms",
        )  # fmt: skip
    message = str(refused.value)
    assert (
        "KL0 real (real, from phantoms): 2 of 3 (3 more elsewhere in the pool)"
        in message
    )
    assert "--fill-from-pool" in message and "reserved" not in message
    assert not Case.objects.filter(study__slug="short").exists()


def test_build_cases_fill_from_pool_says_what_came_from_where(batches, generators):
    run("create_study", "filled", "--name", "Filled")
    out, err = run(
        "build_cases", "filled", "--per-grade", "3", "--seed", "1", "--practice", "0",
        "--real-from", "phantoms", "--generator", "new-gan", "--fill-from-pool",
    )  # fmt: skip
    for grade in range(5):
        assert (
            f"KL{grade} real (real, from phantoms): 2 of 3 from the choice, "
            "1 from elsewhere in the pool (1 from batch oai)"
        ) in err
        assert (
            f"KL{grade} synthetic (synthetic, from generator new-gan): 2 of 3 from "
            "the choice, 1 from elsewhere in the pool (1 from generator old-gan)"
        ) in err
    assert "real: 5 from batch oai, 10 from batch phantoms" in out
    assert main_cases("filled", "real").filter(image__batch__name="oai").count() == 5


def test_build_cases_exclude_used(batches, generators):
    run("create_study", "first", "--name", "First")
    run("build_cases", "first", "--per-grade", "2", "--seed", "1", "--practice", "0")
    used = set(Case.objects.filter(study__slug="first").values_list("image", flat=True))

    run("create_study", "second", "--name", "Second")
    run(
        "build_cases", "second", "--per-grade", "2", "--seed", "1", "--practice", "2",
        "--exclude-used",
    )  # fmt: skip
    second = set(
        Case.objects.filter(study__slug="second").values_list("image", flat=True)
    )
    assert len(second) == 22 and not second & used

    # Without the flag the same seed draws the same images again.
    run("create_study", "third", "--name", "Third")
    run("build_cases", "third", "--per-grade", "2", "--seed", "1", "--practice", "0")
    third = set(
        Case.objects.filter(study__slug="third", role=Case.Role.MAIN).values_list(
            "image", flat=True
        )
    )
    assert third & used

    # Too few unused images: refused, counting the ones other studies use.
    run("create_study", "fourth", "--name", "Fourth")
    with pytest.raises(
        CommandError, match=r"KL0 synthetic: 0 of 2 \(4 more used by other studies\)"
    ):
        run(
            "build_cases", "fourth", "--per-grade", "2", "--seed", "1",
            "--practice", "0", "--exclude-used",
        )  # fmt: skip


def test_build_cases_names_unknown_batches_and_generators(batches, generators):
    run("create_study", "typo", "--name", "Typo")
    with pytest.raises(CommandError, match=r"No import batch or tag named 'oia'.*oai"):
        run(
            "build_cases",
            "typo",
            "--per-grade",
            "1",
            "--seed",
            "1",
            "--real-from",
            "oia",
        )
    with pytest.raises(CommandError, match=r"No generator named 'new'.*new-gan"):
        run(
            "build_cases",
            "typo",
            "--per-grade",
            "1",
            "--seed",
            "1",
            "--generator",
            "new",
        )


def test_the_study_page_draws_cases_from_the_same_choice(
    batches, generators, staff_client
):
    run("create_study", "paged", "--name", "Paged")
    page = staff_client.get("/staff/studies/paged/").content.decode()
    assert 'id="cases-form"' in page
    assert '<option value="oai">oai</option>' in page
    assert '<option value="new-gan">new-gan</option>' in page

    form = {
        "per_grade": 3,
        "seed": 1,
        "practice": 0,
        "attention": 0,
        "real_from": ["phantoms"],
        "generator": ["new-gan"],
    }
    refused = staff_client.post("/staff/studies/paged/cases", form)
    assert refused.status_code == 400
    text = refused.content.decode()
    assert (
        "KL0 real (real, from phantoms): 2 of 3 (3 more elsewhere in the pool)" in text
    )
    assert not Case.objects.filter(study__slug="paged").exists()

    filled = staff_client.post(
        "/staff/studies/paged/cases", form | {"fill_from_pool": "on"}, follow=True
    )
    text = filled.content.decode()
    assert (
        "Filled from outside the choice: KL3 synthetic (synthetic, from generator "
        "new-gan): 2 of 3 from the choice, 1 from elsewhere in the pool (1 from "
        "generator old-gan)."
    ) in text
    assert (
        "30 main cases" in text
        and "real: 5 from batch oai, 10 from batch phantoms" in text
    )
    assert main_cases("paged", "real").filter(image__batch__name="oai").count() == 5


@pytest.fixture
def mammo_pool(make_image):
    """A pool graded in BI-RADS only: 2 real and 2 synthetic images per
    category 1-5, 1 real of category 0, and a few knees with KL grades."""
    images = [
        make_image(source, b % 5, kl_grade=None, references={"birads": b})
        for b in range(1, 6)
        for source in ("real", "real", "synthetic", "synthetic")
    ]
    images.append(make_image("real", 0, kl_grade=None, references={"birads": 0}))
    knees = [make_image(source, 2) for source in ("real", "synthetic") * 3]
    return images, knees


def test_cases_are_balanced_on_the_scale_the_study_grades_on(mammo_pool):
    """A study that grades BI-RADS draws its cases by BI-RADS category (its
    default), from images graded on that scale only, and says which cell is
    short in its own terms."""
    _, knees = mammo_pool
    run(
        "create_study", "mammo", "--name", "Mammo", "--practice", "0",
        "--no-kl-grade", "--question", "1:birads:ordinal:birads",
    )  # fmt: skip
    with pytest.raises(
        CommandError,
        match=r"BI-RADS 0 synthetic: 0 of 2; BI-RADS 0 real: 1 of 2|"
        r"BI-RADS 0 real: 1 of 2; BI-RADS 0 synthetic: 0 of 2",
    ):
        run("build_cases", "mammo", "--per-grade", "2", "--seed", "1")
    out, _ = run(
        "build_cases", "mammo", "--per-grade", "2", "--seed", "1",
        "--grades", "1,2,3,4,5",
    )  # fmt: skip
    assert "20 main cases" in out
    drawn = Case.objects.filter(study__slug="mammo").select_related("image")
    cells = {}
    for case in drawn:
        key = (case.image.reference("birads"), case.image.source)
        cells[key] = cells.get(key, 0) + 1
    assert cells == {(b, s): 2 for b in range(1, 6) for s in ("real", "synthetic")}
    assert not drawn.filter(image__in=knees).exists()

    # The same pool's knees, drawn by KL on request.
    run("create_study", "knees", "--name", "Knees", "--practice", "0")
    out, _ = run(
        "build_cases", "knees", "--per-grade", "3", "--seed", "1",
        "--scale", "kl", "--grades", "2",
    )  # fmt: skip
    assert "6 main cases" in out

    for args, message in [
        (("--scale", "lung-rads"), "No scale 'lung-rads' to balance on"),
        (("--grades", "1,9"), r"--grades 9: not values of the BI-RADS category"),
    ]:
        with pytest.raises(CommandError, match=message):
            run("build_cases", "mammo", "--per-grade", "1", "--seed", "1", *args)


def test_a_study_without_kl_grades_on_a_knee_pool_still_balances_on_kl(pool):
    """Its realism question has no reference values in the pool: the cases
    are balanced on the KL grades the pool holds, as before."""
    run(
        "create_study", "likert", "--name", "Likert", "--practice", "0",
        "--phases", "detection", "--no-kl-grade",
        "--question", "1:realism:ordinal:realism-5",
    )  # fmt: skip
    out, _ = run("build_cases", "likert", "--per-grade", "1", "--seed", "1")
    assert "10 main cases" in out


def test_the_study_page_offers_the_scales_to_balance_on(mammo_pool, staff_client):
    run(
        "create_study", "mammo", "--name", "Mammo", "--practice", "0",
        "--no-kl-grade", "--question", "1:birads:ordinal:birads",
    )  # fmt: skip
    page = staff_client.get("/staff/studies/mammo/").content.decode()
    assert '<option value="birads" selected>BI-RADS category (birads)</option>' in page
    assert '<option value="kl">KL grade (kl)</option>' in page
    drawn = staff_client.post(
        "/staff/studies/mammo/cases",
        {
            "scale": "birads",
            "grades": "1,2,3,4,5",
            "per_grade": 1,
            "seed": 3,
            "practice": 0,
            "attention": 0,
        },
        follow=True,
    )
    assert "10 main cases" in drawn.content.decode()
