"""Redis restarted under a running generation job, with and without its worker.

Runs where the project runs on Redis (``REDIS_URL`` set). The Redis restarted
here is a server of this test's own on a free port, started without
persistence, so a restart loses every message it held, as a crashed broker
without a disk would.
"""

import os
import shutil
import signal
import subprocess
import time

import pytest

from tests.generation.test_generation import Stack, tiny_checkpoint  # noqa: F401
from tests.live import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.worker,
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="runs on Redis only"),
    pytest.mark.skipif(not shutil.which("redis-server"), reason="needs redis-server"),
]


class OwnRedis:
    def __init__(self, folder) -> None:
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis(port=self.port)
        for _ in range(100):
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.kill()
        self.start()


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    redis = OwnRedis(tmp_path_factory.mktemp("redis"))
    redis.start()
    yield redis
    redis.kill()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tiny_checkpoint, broker):  # noqa: F811
    mp = pytest.MonkeyPatch()
    mp.setenv("REDIS_URL", broker.url)  # Stack takes its broker from here
    base = tmp_path_factory.mktemp("broker-restart")
    s = Stack(base)
    mp.undo()
    try:
        assert s.env["REDIS_URL"].startswith(f"redis://127.0.0.1:{broker.port}/")
        for args in (
            ("migrate", "--noinput"),
            ("register_generator", str(tiny_checkpoint), "--name", "tiny"),
        ):
            out = s.manage(*args)
            assert out.returncode == 0, out.stderr
        yield s
    finally:
        s.close()


def start_job(stack, per_grade: int) -> int:
    out = stack.manage(
        "generate_images", "--generator", "tiny", "--per-grade", str(per_grade)
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[1].rstrip(":"))


def test_a_redis_restart_mid_job_loses_no_image_and_adds_none(stack, broker):
    stack.worker("w1")
    try:
        job = start_job(stack, per_grade=30)
        stack.wait_for(job, lambda row: row[1] >= 10)
        broker.restart()
        assert stack.job(job)[1] < 150, "finished before the restart"
        status, done, total, _, error = stack.wait_for(
            job, lambda row: row[0] in ("done", "failed")
        )
        assert (status, done, total, error) == ("done", 150, 150, "")
        stack.assert_complete(job, per_grade=30)
        stack.stop_workers()
        # The worker did lose its broker, and came back to it.
        log = (stack.base / "w1.log").read_text()
        assert "Connection to broker lost" in log, log[-3000:]
    finally:
        stack.stop_workers()


def test_a_redis_restart_and_a_dead_worker_still_finish_the_job(stack, broker):
    # The message is gone with the broker's memory and the worker with its
    # process: the lease running out is all that is left to notice.
    doomed = stack.worker("doomed")
    job = start_job(stack, per_grade=30)
    try:
        stack.wait_for(job, lambda row: row[1] >= 10)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
        broker.restart()
        status, done, total, attempts, _ = stack.job(job)
        assert status == "running" and done < total
        stack.worker("replacement")
        status, done, total, attempts, error = stack.wait_for(
            job, lambda row: row[0] in ("done", "failed")
        )
        assert (status, done, total, error) == ("done", 150, 150, "")
        assert attempts >= 2
        stack.assert_complete(job, per_grade=30)
    finally:
        stack.stop_workers()


def test_a_job_whose_message_died_with_redis_before_any_worker_is_still_run(
    stack, broker
):
    job = start_job(stack, per_grade=4)
    assert stack.job(job)[0] == "pending"
    broker.restart()  # the queued message is gone before a worker saw it
    stack.worker("late")
    try:
        status, done, total, _, error = stack.wait_for(
            job, lambda row: row[0] in ("done", "failed")
        )
        assert (status, done, total, error) == ("done", 20, 20, "")
        stack.assert_complete(job, per_grade=4)
        log = (stack.base / "late.log").read_text()
        assert f"generation job {job} lost its worker; queued again" in log
    finally:
        stack.stop_workers()
