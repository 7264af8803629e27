"""Generation jobs: the services in-process, then on a real Celery worker process.

For the worker tests, the worker, the commands and this test share one scratch database (a SQLite
file, or a PostgreSQL database of its own when ``DATABASE_URL`` is set) and
one broker (a Redis database of its own when ``REDIS_URL`` is set, else the
filesystem broker in a temporary folder), so nothing here touches the test
database of the rest of the suite.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from turingtest.generation import services as generation
from turingtest.generation.models import GenerationJob
from turingtest.generation.services import generation_seed
from turingtest.imaging.models import Image

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 3


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    from generator.train import TrainOptions, train
    from turingtest.imaging.phantom import phantom_dataset

    base = tmp_path_factory.mktemp("tiny")
    phantom_dataset(base / "data", per_grade=4, size=32, seed=0)
    options = TrainOptions(
        data=str(base / "data"),
        out=str(base / "run"),
        config="tiny",
        steps=2,
        progress=False,
    )
    return train(options)


@pytest.fixture
def tiny(db, tiny_checkpoint):
    return generation.generator_register(checkpoint=tiny_checkpoint, name="tiny")


def test_register_records_hash_config_and_training_data(tiny, tiny_checkpoint):
    assert tiny.sha256 == generation.file_sha256(tiny_checkpoint)
    assert tiny.config["resolution"] == 32 and tiny.config["step"] == 2
    assert "20 images" in tiny.training_data and "KL4: 4" in tiny.training_data


def test_register_refuses_what_is_not_a_checkpoint(db, tmp_path):
    bogus = tmp_path / "x.pt"
    bogus.write_bytes(b"not a checkpoint")
    with pytest.raises(ValidationError):
        generation.generator_register(checkpoint=bogus, name="bogus")


def test_a_job_is_queued_only_once_committed(
    tiny, django_capture_on_commit_callbacks, monkeypatch
):
    queued = []
    monkeypatch.setattr(generation, "_queue", queued.append)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = generation.generation_job_create(
            generator=tiny, per_grade={0: 2, "4": 1, 2: 0}
        )
        assert queued == []
    assert len(callbacks) == 1 and queued == [job.pk]
    assert job.per_grade == {"0": 2, "4": 1} and job.total == 3
    with pytest.raises(ValidationError):
        generation.generation_job_create(generator=tiny, per_grade={5: 1})


def test_running_a_job_again_fills_gaps_and_duplicates_nothing(
    tiny, media, monkeypatch, settings
):
    monkeypatch.setattr(generation, "_queue", lambda pk: None)
    job = generation.generation_job_create(generator=tiny, per_grade={1: 3, 3: 2})
    job = generation.generation_job_execute(job_id=job.pk)
    assert (job.status, job.done, job.total, job.attempts) == ("done", 5, 5, 1)
    images = list(Image.objects.filter(job=job).order_by("job_index"))
    assert [i.kl_grade for i in images] == [1, 1, 1, 3, 3]
    assert [i.seed for i in images] == [generation_seed(job.pk, i) for i in range(5)]
    # the job's images are one import batch, named after generator and job
    assert {i.batch.name for i in images} == {f"{tiny.name} job {job.pk}"}
    # a finished job is left alone
    assert generation.generation_job_execute(job_id=job.pk) is None
    # a job whose worker died after image 2 gets exactly the missing ones
    lost = images[3]
    lost.delete()
    GenerationJob.objects.filter(pk=job.pk).update(status="running", worker="gone:1")
    assert generation.generation_job_execute(job_id=job.pk) is None  # lease still held
    settings.TURINGTEST = settings.TURINGTEST | {"GENERATION_LEASE_SECONDS": 0}
    job = generation.generation_job_execute(job_id=job.pk)
    assert job.status == "done" and job.attempts == 2
    again = Image.objects.get(job=job, job_index=3)
    assert (again.sha256, again.seed) == (lost.sha256, lost.seed)
    assert Image.objects.filter(job=job).count() == 5
    assert again.batch == images[0].batch


def test_a_changed_checkpoint_fails_the_job_with_its_reason(
    tiny, media, monkeypatch, tmp_path
):
    monkeypatch.setattr(generation, "_queue", lambda pk: None)
    job = generation.generation_job_create(generator=tiny, per_grade={0: 1})
    GeneratorModel = type(tiny)
    GeneratorModel.objects.filter(pk=tiny.pk).update(sha256="0" * 64)
    with pytest.raises(ValidationError):
        generation.generation_job_execute(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and "has changed since it was registered" in job.error


def test_stale_running_jobs_are_queued_again_once(tiny, monkeypatch):
    queued = []
    monkeypatch.setattr(generation, "_queue", queued.append)
    job = generation.generation_job_create(generator=tiny, per_grade={0: 1})
    queued.clear()
    GenerationJob.objects.filter(pk=job.pk).update(
        status="running",
        worker="gone:1",
        heartbeat_at=timezone.now() - timedelta(hours=1),
    )
    with transaction.atomic():
        assert generation.generation_jobs_recover() == [job.pk]
        assert generation.generation_jobs_recover() == []
    job.refresh_from_db()
    assert job.status == "pending" and job.worker == ""


def test_the_web_process_never_imports_torch():
    code = (
        "import sys, django; django.setup();"
        "import turingtest.urls, turingtest.studies.admin, turingtest.studies.tasks;"
        "import turingtest.generation.admin, turingtest.generation.tasks;"
        "import turingtest.results.admin, turingtest.results.tasks;"
        "import turingtest.generation.services, turingtest.studies.machine;"
        "import turingtest.studies.simulation, turingtest.demo;"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    env = os.environ | {"DJANGO_SETTINGS_MODULE": "turingtest.settings"}
    subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=120
    )


class Stack:
    """Environment, database and broker for subprocesses of the project."""

    def __init__(self, base: Path):
        self.base = base
        self.env = os.environ.copy()
        self.env.update(
            DJANGO_SETTINGS_MODULE="turingtest.settings",
            MEDIA_ROOT=str(base / "media"),
            TURINGTEST_GENERATION_LEASE_SECONDS=str(LEASE_SECONDS),
            TURINGTEST_GENERATION_BATCH_SIZE="2",
            OMP_NUM_THREADS="1",
            PYTHONUNBUFFERED="1",
        )
        self.pg_admin_url = None
        database_url = os.environ.get("DATABASE_URL", "")
        if database_url.startswith(("postgres://", "postgresql://")):
            parts = urlsplit(database_url)
            self.pg_name = f"test_generation_{os.getpid()}"
            self.pg_admin_url = urlunsplit(parts._replace(path="/postgres"))
            self._pg(f'DROP DATABASE IF EXISTS "{self.pg_name}"')
            self._pg(f'CREATE DATABASE "{self.pg_name}"')
            self.env["DATABASE_URL"] = urlunsplit(
                parts._replace(path=f"/{self.pg_name}")
            )
            self.dsn = self.env["DATABASE_URL"].replace(
                "postgres://", "postgresql://", 1
            )
        else:
            self.sqlite = base / "db.sqlite3"
            self.env["DATABASE_URL"] = f"sqlite:///{self.sqlite}"
        if os.environ.get("REDIS_URL"):
            parts = urlsplit(os.environ["REDIS_URL"])
            self.env["REDIS_URL"] = urlunsplit(parts._replace(path="/13"))
            self.redis_flush()
        else:
            self.env.pop("REDIS_URL", None)
            self.env["BROKER_DIR"] = str(base / "broker")
            for sub in ("queue", "processed"):
                (base / "broker" / sub).mkdir(parents=True, exist_ok=True)
        self.workers: list[subprocess.Popen] = []

    def _pg(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.pg_admin_url, autocommit=True) as conn:
            conn.execute(sql)

    def redis_flush(self) -> None:
        import redis

        redis.Redis.from_url(self.env["REDIS_URL"]).flushdb()

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self.pg_admin_url:
            import psycopg

            with psycopg.connect(self.dsn) as conn:
                return conn.execute(sql.replace("?", "%s"), params).fetchall()
        with sqlite3.connect(self.sqlite, timeout=20) as conn:
            return conn.execute(sql, params).fetchall()

    def manage(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def worker(self, name: str) -> subprocess.Popen:
        log = open(self.base / f"{name}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
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
                "-n",
                f"{name}@%h",
                "--without-mingle",
                "--without-gossip",
                "--without-heartbeat",
                "-l",
                "info",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.workers.append(proc)
        return proc

    def stop_workers(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.workers.clear()

    def close(self) -> None:
        self.stop_workers()
        if "REDIS_URL" in self.env:
            self.redis_flush()
        if self.pg_admin_url:
            self._pg(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')

    def job(self, job_id: int) -> tuple:
        (row,) = self.query(
            "SELECT status, done, total, attempts, error FROM generation_generationjob "
            "WHERE id = ?",
            (job_id,),
        )
        return row

    def wait_for(self, job_id: int, condition, timeout: float = 180) -> tuple:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self.job(job_id)
            if condition(row):
                return row
            time.sleep(0.1)
        logs = "\n".join(p.read_text()[-3000:] for p in self.base.glob("*.log"))
        raise AssertionError(f"job {job_id} stuck at {row}\n{logs}")

    def assert_complete(self, job_id: int, per_grade: int) -> None:
        rows = self.query(
            "SELECT job_index, kl_grade, seed, sha256, file, source FROM imaging_image "
            "WHERE job_id = ? ORDER BY job_index",
            (job_id,),
        )
        total = 5 * per_grade
        assert [r[0] for r in rows] == list(range(total))  # no gaps, no duplicates
        assert [r[1] for r in rows] == [g for g in range(5) for _ in range(per_grade)]
        assert [r[2] for r in rows] == [
            generation_seed(job_id, i) for i in range(total)
        ]
        assert len({r[3] for r in rows}) == total
        assert {r[5] for r in rows} == {"synthetic"}
        stored = {
            str(p.relative_to(self.base / "media"))
            for p in (self.base / "media").rglob("*")
            if p.is_file()
        }
        referenced = {
            r[0] for r in self.query("SELECT file FROM imaging_image WHERE file != ''")
        }
        assert stored == referenced  # no orphaned files


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_checkpoint):
    checkpoint = tiny_checkpoint
    base = tmp_path_factory.mktemp("generation")
    s = Stack(base)
    try:
        migrate = s.manage("migrate", "--noinput")
        assert migrate.returncode == 0, migrate.stderr
        reg = s.manage("register_generator", str(checkpoint), "--name", "tiny")
        assert reg.returncode == 0, reg.stderr
        assert "tiny config, 32 px, step 2" in reg.stdout
        yield s
    finally:
        s.close()


@pytest.mark.worker
def test_a_job_makes_exactly_the_requested_images(stack):
    stack.worker("w1")
    try:
        out = stack.manage(
            "generate_images",
            "--generator",
            "tiny",
            "--per-grade",
            "3",
            "--wait",
            "--timeout",
            "150",
        )
        assert out.returncode == 0, out.stdout + out.stderr
        job_id = int(out.stdout.split()[1].rstrip(":"))
        assert stack.job(job_id)[:3] == ("done", 15, 15)
        assert "done 15/15" in out.stdout
        stack.assert_complete(job_id, per_grade=3)
        (config,) = stack.query(
            "SELECT sha256, training_data FROM generation_generator"
        )
        assert len(config[0]) == 64 and "20 images" in config[1]
    finally:
        stack.stop_workers()


@pytest.mark.worker
def test_a_killed_worker_is_replaced_and_the_job_still_completes(stack):
    first = stack.worker("doomed")
    out = stack.manage("generate_images", "--generator", "tiny", "--per-grade", "60")
    assert out.returncode == 0, out.stderr
    job_id = int(out.stdout.split()[1].rstrip(":"))
    try:
        stack.wait_for(job_id, lambda row: row[1] >= 10)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        status, done, total, attempts, _ = stack.job(job_id)
        assert status == "running" and done < total == 300, "finished before the kill"
        stack.worker("replacement")
        status, done, total, attempts, error = stack.wait_for(
            job_id, lambda row: row[0] in ("done", "failed")
        )
        assert (status, done, total, error) == ("done", 300, 300, "")
        assert attempts >= 2
        stack.assert_complete(job_id, per_grade=60)
    finally:
        stack.stop_workers()


@pytest.mark.worker
def test_a_teams_own_torchscript_and_entry_point_generators_run_the_same_way(
    stack, tmp_path
):
    """(b) a TorchScript file and (c) an entry point installed on the workers
    go through the same queue, seeds, leases, counts and provenance as (a)."""
    import torch

    class Ramp(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.z_dim = 8

        def forward(self, z: torch.Tensor, grade: torch.Tensor) -> torch.Tensor:
            level = torch.tanh(z[:, :1]) * 0.4 + grade[:, None] * 0.1 - 0.2
            noise = torch.sin(z[:, 1:2, None, None] * torch.arange(36.0)[None, None])
            return (level[:, :, None, None] + 0.3 * noise).expand(-1, 1, 36, 36)

    script = tmp_path / "ramp.pt"
    torch.jit.script(Ramp()).save(str(script))
    for args in (
        (str(script), "--name", "team-ts", "--kind", "torchscript"),
        (
            "tests.generator.entry_point_generator:make",
            "--name",
            "team-ep",
            "--kind",
            "entrypoint",
        ),
    ):
        reg = stack.manage("register_generator", *args)
        assert reg.returncode == 0, reg.stdout + reg.stderr
    stack.worker("team")
    try:
        for name in ("team-ts", "team-ep"):
            out = stack.manage(
                "generate_images",
                "--generator",
                name,
                "--per-grade",
                "2",
                "--wait",
                "--timeout",
                "150",
            )
            assert out.returncode == 0, out.stdout + out.stderr
            job_id = int(out.stdout.split()[1].rstrip(":"))
            assert stack.job(job_id)[:3] == ("done", 10, 10)
            stack.assert_complete(job_id, per_grade=2)
        kinds = dict(stack.query("SELECT name, kind FROM generation_generator"))
        assert kinds["team-ts"] == "torchscript" and kinds["team-ep"] == "entrypoint"
    finally:
        stack.stop_workers()


def test_registering_an_entry_point_that_does_not_import_is_refused(db):
    with pytest.raises(ValidationError, match="cannot import"):
        generation.generator_register(
            checkpoint="tests.generator.nowhere:make", name="nowhere", kind="entrypoint"
        )


def test_a_pending_job_whose_message_was_lost_is_queued_again(
    tiny, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr(generation, "_queue", queued.append)
    job = generation.generation_job_create(generator=tiny, per_grade={0: 1})
    queued.clear()  # the first message never reached a worker
    with transaction.atomic():
        assert generation.generation_jobs_recover() == []  # still within its lease
    GenerationJob.objects.filter(pk=job.pk).update(
        heartbeat_at=timezone.now() - timedelta(hours=1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert generation.generation_jobs_recover() == [job.pk]
        assert generation.generation_jobs_recover() == []
    assert queued == [job.pk]


# --- the admin ---------------------------------------------------------------


def test_a_job_added_in_the_admin_is_queued(
    staff_client, tiny, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr(generation, "_queue", queued.append)
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            "/admin/generation/generationjob/add/",
            {"generator": tiny.pk, "per_grade": '{"0": 2, "3": 1}'},
        )
    assert response.status_code == 302, response.content[:2000]
    job = GenerationJob.objects.get()
    assert (job.total, job.status, queued) == (3, "pending", [job.pk])
    assert job.image_size == 224  # the configured size when the form leaves it out

    GenerationJob.objects.filter(pk=job.pk).update(status="running", done=2)
    page = staff_client.get("/admin/generation/generationjob/").content.decode()
    assert "2 / 3 (66%)" in page
    change = staff_client.get(f"/admin/generation/generationjob/{job.pk}/change/")
    assert (
        change.status_code == 200 and 'name="per_grade"' not in change.content.decode()
    )


def test_a_bad_request_in_the_admin_queues_nothing(staff_client, tiny, monkeypatch):
    queued = []
    monkeypatch.setattr(generation, "_queue", queued.append)
    response = staff_client.post(
        "/admin/generation/generationjob/add/",
        {"generator": tiny.pk, "per_grade": '{"9": 2}'},
    )
    assert response.status_code in (200, 302)
    assert not GenerationJob.objects.exists() and not queued


def test_a_job_stores_its_images_at_the_size_it_was_given(tiny, media, monkeypatch):
    monkeypatch.setattr(generation, "_queue", lambda pk: None)
    job = generation.generation_job_create(
        generator=tiny, per_grade={2: 2}, image_size=96
    )
    job = generation.generation_job_execute(job_id=job.pk)
    assert job.status == "done"
    sizes = set(Image.objects.filter(job=job).values_list("width", "height"))
    assert sizes == {(96, 96)}
