"""``make demo``: a living study built the way production builds one.

Real pool (the shipped sample of real knee radiographs, your folder, or the
procedural knee phantom) → the shipped generator (or one trained briefly
here) → a generation job run by a real Celery worker on the embedded broker
→ a two-phase study with machine readers (the machine Turing test's
classifiers, trained on the pool images the study does not show), simulated
readers drawn around the machine's evidence, and invitation links. Each step
is skipped when its result already exists, so a second run starts in seconds.
"""

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from tqdm import tqdm

from turingtest.conf import project_settings
from turingtest.domain.scales import KL
from turingtest.generation.models import GenerationJob, Generator
from turingtest.generation.services import (
    generation_job_create,
    generation_job_requeue,
    generator_register,
)
from turingtest.imaging.models import Image
from turingtest.imaging.phantom import phantom_dataset
from turingtest.imaging.selectors import ImageFilter
from turingtest.imaging.services import images_import
from turingtest.studies import services
from turingtest.studies.models import Case, Study
from turingtest.studies.simulation import readers_simulate

DEMO_SLUG = "demo-knee"
GENERATOR_NAME = "demo"
ADMIN_USER = "admin"
ASSETS = Path(settings.BASE_DIR) / "assets"
# 30 real radiographs per KL grade from the held-out split (assets/ATTRIBUTION.md)
REAL_SAMPLE = ASSETS / "knee-kl-sample"
# The project's generator, trained on the same dataset's training split
SHIPPED_GENERATOR = ASSETS / "weights" / "knee-default.pt"
SHIPPED_NAME = "knee-default"
PHANTOM = "phantom"


@dataclass
class DemoOptions:
    data: str | None = None  # None: the shipped sample; "phantom": drawn knees
    workdir: Path = field(default_factory=lambda: settings.VAR_DIR / "demo")
    per_grade: int = 6  # main cases per grade and source
    practice: int = 4
    readers: int = 20
    # Machine readers added before the simulated ones (add_machine_reader).
    machine_models: tuple[str, ...] = ("c2st", "kl")
    # generator.train arguments; None: the shipped generator, no training
    train_args: tuple[str, ...] | None = None
    say: Callable[[str], None] = print

    def trains(self) -> bool:
        # Phantoms are not knees the shipped model knows: it trains on them.
        return self.train_args is not None or self.data == PHANTOM

    def training_arguments(self) -> tuple[str, ...]:
        if self.train_args is not None:
            return self.train_args
        return ("--config", "tiny", "--resolution", "64", "--minutes", "3")


@dataclass
class DemoResult:
    study: Study
    admin_user: str
    admin_password: str
    links: list[str]


def _admin(workdir: Path) -> tuple[str, str]:
    secret = workdir / "admin-password.txt"
    user_model = get_user_model()
    if secret.exists() and user_model.objects.filter(username=ADMIN_USER).exists():
        return ADMIN_USER, secret.read_text().strip()
    password = secrets.token_urlsafe(9)
    user, _ = user_model.objects.get_or_create(
        username=ADMIN_USER, defaults={"email": "admin@example.org"}
    )
    user.is_staff = user.is_superuser = True
    user.set_password(password)
    user.save()
    secret.write_text(password)
    secret.chmod(0o600)
    return ADMIN_USER, password


def _real_pool(opts: DemoOptions) -> Path:
    """Fill the real pool once; returns the folder the generator trains on."""

    if opts.data is None:
        source = REAL_SAMPLE
    elif opts.data != PHANTOM:
        source = Path(opts.data).expanduser()
        if not source.exists():
            raise SystemExit(f"DATA={opts.data}: no such folder or file.")
    else:
        source = opts.workdir / "phantoms"
        needed = opts.per_grade + opts.practice + 2
        if not (source / str(KL.max)).exists():
            opts.say(f"Drawing {needed * KL.count} procedural knee phantoms…")
            phantom_dataset(
                source,
                per_grade=needed,
                size=project_settings().image_size,
                seed=2024,
            )
    if not Image.objects.filter(source="real").exists():
        opts.say(f"Importing real images from {source}…")
        with tqdm(desc="import", unit="img") as bar:

            def progress(done: int, total: int) -> None:
                bar.total, bar.n = total, done
                bar.refresh()

            result = images_import(source, source="real", progress=progress)
        opts.say(result.summary())
    return source


def _generator(opts: DemoOptions, data: Path) -> Generator:

    if not opts.trains():
        existing = Generator.objects.filter(name=SHIPPED_NAME).first()
        if existing is not None:
            return existing
        opts.say(f"Registering the shipped generator {SHIPPED_GENERATOR.name}…")
        return generator_register(checkpoint=SHIPPED_GENERATOR, name=SHIPPED_NAME)
    existing = Generator.objects.filter(name=GENERATOR_NAME).first()
    if existing is not None:
        return existing
    run = opts.workdir / "runs" / GENERATOR_NAME
    checkpoint = run / "checkpoint.pt"
    if not checkpoint.exists():
        opts.say(
            "Training the demo generator (a few minutes on a CPU; reused next time)…"
        )
        subprocess.run(
            [
                sys.executable,
                "-m",
                "generator.train",
                "--data",
                str(data),
                "--out",
                str(run),
                *opts.training_arguments(),
            ],
            check=True,
        )
    return generator_register(checkpoint=checkpoint, name=GENERATOR_NAME)


def worker_start(log: Path) -> subprocess.Popen:
    """A Celery worker for both queues, on whatever broker the settings name."""
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "turingtest",
            "worker",
            "-Q",
            "gpu,default",
            "--pool",
            "solo",
            "--loglevel",
            "INFO",
            "--hostname",
            f"demo-{os.getpid()}@%h",
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=os.environ
        | {
            "DJANGO_SETTINGS_MODULE": os.environ.get(
                "DJANGO_SETTINGS_MODULE", "turingtest.settings"
            )
        },
    )


def _synthetic_pool(
    opts: DemoOptions, generator: Generator, worker: subprocess.Popen
) -> None:

    have = Image.objects.filter(source="synthetic", generator=generator).count()
    # Three per case: the study's, its practice's, and about twice as many
    # again outside the study for the machine reader to learn from.
    wanted = opts.per_grade * 3 * KL.count
    if have >= opts.per_grade * KL.count:
        return
    job = (
        GenerationJob.objects.filter(generator=generator)
        .exclude(status=GenerationJob.Status.FAILED)
        .first()
    )
    with transaction.atomic():
        if job is None or job.status == GenerationJob.Status.DONE:
            job = generation_job_create(
                generator=generator, per_grade={g: wanted // KL.count for g in KL.codes}
            )
        else:
            generation_job_requeue(job=job)  # left unfinished by an interrupted demo
    opts.say(
        f"Generation job {job.pk} queued; the Celery worker beside the demo runs it…"
    )
    with tqdm(total=job.total, desc="generate", unit="img") as bar:
        while True:
            job.refresh_from_db()
            bar.n = job.done
            bar.refresh()
            if job.status in (GenerationJob.Status.DONE, GenerationJob.Status.FAILED):
                break
            if worker.poll() is not None:
                raise SystemExit("The Celery worker stopped; see var/demo/worker.log.")
            time.sleep(0.5)
    if job.status == GenerationJob.Status.FAILED:
        raise SystemExit(f"Generation failed: {job.error}")


def _study(opts: DemoOptions, generator: Generator) -> Study:

    study = Study.objects.filter(slug=DEMO_SLUG).first()
    if study is not None:
        return study
    study = services.study_create(
        slug=DEMO_SLUG,
        name="Knee radiographs: real or synthetic? (demo)",
        # Readers grade first without being told some images are synthetic:
        # the title they see must not say so either.
        reader_title="Knee radiograph reading study (demo)",
        phases=("grading", "detection"),
        practice_count=opts.practice,
        show_score=True,
        # A tenth of the main cases (real and synthetic at every grade) shown
        # twice, a quarter of the phase apart: the report's test-retest table.
        repeat_cases=opts.per_grade,
        repeat_min_gap=max(1, opts.per_grade * 10 // 4),
        instructions=(
            "Thank you for taking part. You will see knee radiographs (AP view), one at a time.\n\n"
            "Work at your usual reading pace; there is no time limit, and you can pause and come back."
        ),
    )
    # Synthetic cases from this demo's generator only: a pool kept from an
    # earlier demo may hold another generator's images.
    services.cases_build(
        study=study,
        per_grade=opts.per_grade,
        seed=1,
        synthetic=ImageFilter(source="synthetic", generators=(generator.name,)),
    )
    study = services.study_open(study=study)
    for model in opts.machine_models:
        _machine_reader(opts, study, model)
    opts.say(f"Simulating {opts.readers} readers…")
    with tqdm(total=opts.readers, desc="readers", unit="reader") as bar:
        readers_simulate(
            study=study,
            readers=opts.readers,
            accuracy=0.65,
            seed=1,
            progress=bar.update,
        )
    return study


def _machine_reader(opts: DemoOptions, study: Study, model: str) -> None:
    """Add a machine reader in a child process: this one serves the web, without torch."""
    opts.say(
        f"Adding a machine reader ({model}): training it on the pool outside the study…"
    )
    done = subprocess.run(
        [
            sys.executable,
            str(Path(settings.BASE_DIR) / "manage.py"),
            "add_machine_reader",
            study.slug,
            "--model",
            model,
            "--cache",
            str(opts.workdir / "cache"),
            # One thread: on a busy two-core machine two torch threads ran
            # ten times slower than one (248 s against 26 s for the C2ST).
            "--threads",
            "1",
        ],
        env=os.environ
        | {
            "DJANGO_SETTINGS_MODULE": os.environ.get(
                "DJANGO_SETTINGS_MODULE", "turingtest.settings"
            )
        },
        stdout=subprocess.PIPE,  # its progress and errors go to the terminal
        text=True,
    )
    if done.returncode != 0:
        # The demo works without one: the simulated readers then draw by chance.
        opts.say(f"No {model} machine reader (see above); going on without it.")
    else:
        opts.say(done.stdout.strip())


def _links(opts: DemoOptions, study: Study, base_url: str, count: int = 3) -> list[str]:
    """Three unused invitation links, kept between runs (only hashes live in the database)."""
    store = opts.workdir / "invitations.txt"
    tokens = store.read_text().split() if store.exists() else []
    tokens = [t for t in tokens if services.invitation_find(token=t) is not None]
    while len(tokens) < count:
        tokens += [
            token
            for _, token in services.invitations_create(
                study=study, count=count - len(tokens)
            )
        ]
    store.write_text("\n".join(tokens) + "\n")
    return [f"{base_url}/invite/{t}/" for t in tokens]


def demo_build(
    opts: DemoOptions, *, base_url: str = "http://127.0.0.1:8000"
) -> tuple[DemoResult, subprocess.Popen]:
    """Build (or find) everything the demo shows; returns it with the running worker."""
    opts.workdir.mkdir(parents=True, exist_ok=True)
    call_command("migrate", verbosity=0)
    user, password = _admin(opts.workdir)
    data = _real_pool(opts)
    generator = _generator(opts, data)
    worker = worker_start(opts.workdir / "worker.log")
    try:
        _synthetic_pool(opts, generator, worker)
        study = _study(opts, generator)
        links = _links(opts, study, base_url)
    except BaseException:
        worker_stop(worker)
        raise
    assert study.cases.filter(role=Case.Role.MAIN).exists()
    return DemoResult(study, user, password, links), worker


def worker_stop(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
