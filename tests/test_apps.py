"""The apps along their models: a DAG of imports, and tables moved without losing a row."""

import ast
from pathlib import Path

import pytest
from django.core.management import call_command
from django.utils import timezone

ROOT = Path(__file__).resolve().parents[1]
# Lowest first: an app may import the apps before it, never one after it.
APPS = ("imaging", "generation", "studies", "results")


def _imports(path: Path) -> list[tuple[str, int]]:
    """Modules a file imports, lazy ones included, annotations-only ones not."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for n in ast.walk(node)
    }
    found = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom) and node.module:
            found += [(node.module, node.lineno)]
            found += [(f"{node.module}.{a.name}", node.lineno) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
    return found


def test_no_app_imports_an_app_above_it():
    upward = []
    for rank, app in enumerate(APPS):
        for path in sorted((ROOT / "turingtest" / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for module, line in _imports(path):
                parts = module.split(".")
                if parts[0] == "turingtest" and len(parts) > 1 and parts[1] in APPS:
                    if APPS.index(parts[1]) > rank:
                        upward.append(f"{path.relative_to(ROOT)}:{line} {module}")
    assert upward == []


def test_the_pure_packages_import_no_app():
    for package in ("turingtest/domain", "turingtest/stats", "generator"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for module, line in _imports(path):
                parts = module.split(".")
                app = parts[1] if parts[0] == "turingtest" and len(parts) > 1 else None
                assert app not in APPS, (
                    f"{path.relative_to(ROOT)}:{line} imports {module}"
                )
                assert parts[0] != "django", f"{path.relative_to(ROOT)}:{line}"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_moving_the_models_to_their_apps_keeps_every_row():
    """A database with a pool, a generator's job, a study, answers and a
    stored report, migrated from before the move: every row is there after,
    under the new apps' tables, and the staff's permissions still apply."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    loader = executor.loader
    (move,) = [
        k
        for k in loader.disk_migrations
        if k[0] == "studies" and k[1].endswith("_models_moved_to_their_apps")
    ]
    before = [d for d in loader.disk_migrations[move].dependencies if d[0] == "studies"]
    executor.migrate(
        before + [(app, None) for app in ("generation", "imaging", "results")]
    )
    old = loader.project_state(before).apps
    now = timezone.now()

    def model(name):
        return old.get_model("studies", name)

    user = old.get_model("auth", "User").objects.create(username="staff")
    generator = model("Generator").objects.create(
        name="g", checkpoint="g.pt", sha256="0" * 64
    )
    job = model("GenerationJob").objects.create(
        generator=generator, per_grade={"2": 1}, status="done", done=1, total=1
    )
    batch = model("ImportBatch").objects.create(name="first", created_by=user)
    tag = model("Tag").objects.create(name="hold-out")
    images = [
        model("Image").objects.create(
            source="real", kl_grade=2, sha256="1" * 64, file="pool/a.png",
            width=32, height=32, batch=batch,
        ),
        model("Image").objects.create(
            source="synthetic", kl_grade=2, sha256="2" * 64, file="pool/b.png",
            width=32, height=32, generator=generator, seed=7, job=job, job_index=0,
        ),
    ]  # fmt: skip
    images[0].tags.add(tag)
    study = model("Study").objects.create(name="S", reader_title="S", slug="s", seed=1)
    phase = model("Phase").objects.create(study=study, index=0, kind="grading")
    cases = [
        model("Case").objects.create(study=study, image=image, number=n)
        for n, image in enumerate(images, start=1)
    ]
    reader = model("Reader").objects.create(
        user=user, code="R1", name="R", profession="radiologist", experience_years=5
    )
    enrollment = model("Enrollment").objects.create(reader=reader, study=study)
    session = model("ReadingSession").objects.create(
        enrollment=enrollment, phase=phase, seed=1, order=[c.pk for c in cases]
    )
    for position, case in enumerate(cases):
        model("Judgment").objects.create(
            session=session, case=case, position=position, kl_grade=position + 1,
            served_at=now, answered_at=now, duration_ms=900,
        )  # fmt: skip
    model("StudyReport").objects.create(
        study=study, version=3, built_at=now, answers_count=2, revisions_count=0,
        data={"figures": [1, 2]},
    )  # fmt: skip

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    new = executor.loader.project_state(executor.loader.graph.leaf_nodes()).apps

    image = new.get_model("imaging", "Image")
    assert sorted(image.objects.values_list("sha256", "source", "kl_grade")) == [
        ("1" * 64, "real", 2),
        ("2" * 64, "synthetic", 2),
    ]
    synthetic = image.objects.get(source="synthetic")
    assert (synthetic.generator.name, synthetic.job.done, synthetic.seed) == ("g", 1, 7)
    real = image.objects.get(source="real")
    assert [t.name for t in real.tags.all()] == ["hold-out"]
    assert real.batch.created_by.username == "staff"
    judgment = new.get_model("studies", "Judgment")
    assert sorted(judgment.objects.values_list("case__image__sha256", "kl_grade")) == [
        ("1" * 64, 1),
        ("2" * 64, 2),
    ]
    report = new.get_model("results", "StudyReport").objects.get()
    assert (report.study.slug, report.data) == ("s", {"figures": [1, 2]})
    tables = set(connection.introspection.table_names())
    assert {"imaging_image", "imaging_image_tags", "generation_generationjob"} <= tables
    assert not {t for t in tables if t in {"studies_image", "studies_generator"}}
    # New rows go on from the moved rows' keys.
    assert image.objects.create(
        source="real",
        kl_grade=0,
        sha256="3" * 64,
        file="pool/c.png",
        width=32,
        height=32,
    ).pk > max(i.pk for i in images)
    content_type = new.get_model("contenttypes", "ContentType")
    assert content_type.objects.filter(app_label="studies", model="image").count() == 0
    call_command("migrate", verbosity=0)


def test_the_suite_mirrors_the_source_tree():
    """Each folder of tests/ is named after the package it tests; tests of the
    project's own modules (urls, settings, demo) sit at its top."""
    folders = {
        p.name for p in (ROOT / "tests").iterdir() if (p / "__init__.py").is_file()
    }
    packages = {
        p.name for p in (ROOT / "turingtest").iterdir() if (p / "__init__.py").is_file()
    } | {"generator"}
    assert folders and folders <= packages, folders - packages
