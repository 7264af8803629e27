"""``make demo``'s build step, run as a user runs it: a real worker, the embedded defaults."""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = [pytest.mark.worker, pytest.mark.slow]


def _manage(env: dict, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _demo_env(tmp_path) -> dict:
    """The embedded defaults in a scratch folder, whatever the suite runs on."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")
    }
    return env | {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "MEDIA_ROOT": str(tmp_path / "media"),
        "BROKER_DIR": str(tmp_path / "broker"),
        "DJANGO_SETTINGS_MODULE": "turingtest.settings",
    }


def test_demo_builds_a_study_with_generated_images_and_answers(tmp_path):
    env = _demo_env(tmp_path)
    workdir = tmp_path / "demo"
    args = (
        "demo",
        "--no-serve",
        "--workdir",
        str(workdir),
        "--readers",
        "3",
        "--per-grade",
        "2",
        "--train-steps",
        "2",
    )
    first = _manage(env, *args)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "turingtest demo is ready" in first.stdout
    links = [line.strip() for line in first.stdout.splitlines() if "/invite/" in line]
    assert len(links) == 3
    assert (workdir / "runs" / "demo" / "checkpoint.pt").exists()

    # Readers grade blind first: the title they see does not name the design.
    import sqlite3

    from turingtest.domain.wording import revealing_words

    with sqlite3.connect(tmp_path / "db.sqlite3") as db:
        ((title, name, status),) = db.execute(
            "SELECT reader_title, name, status FROM studies_study "
            "WHERE slug = 'demo-knee'"
        ).fetchall()
    assert revealing_words(name) and not revealing_words(title)
    assert status == "open"

    out = tmp_path / "results"
    assert (
        _manage(env, "export_results", "demo-knee", "--out", str(out)).returncode == 0
    )
    images = list(csv.DictReader((out / "images.csv").open()))
    main = [r for r in images if r["role"] == "main"]
    assert len(main) == 20
    assert {r["generator"] for r in main if r["truth"] == "synthetic"} == {"demo"}
    judgments = list(csv.DictReader((out / "judgments.csv").open()))
    simulated = [r for r in judgments if r["reader_kind"] == "simulated"]
    # Every phase shows 2 of the 20 main cases twice (the retest table).
    assert len(simulated) == 3 * 2 * 22
    assert sum(r["repeat"] == "true" for r in simulated) == 3 * 2 * 2
    retest = list(csv.DictReader((out / "retest.csv").open()))
    assert {(r["phase"], r["pairs"]) for r in retest} == {
        ("grading", "2"),
        ("detection", "2"),
    }
    assert len(retest) == 3 * 2
    # Machine readers: the C2ST CNN answers the detection phase, the KL
    # classifier the grading phase, each every case, labelled as machines.
    machine = [r for r in judgments if r["reader_kind"] == "machine"]
    assert sorted(r["phase"] for r in machine) == ["detection"] * 22 + ["grading"] * 22
    assert len(judgments) == len(simulated) + len(machine)
    readers = list(csv.DictReader((out / "readers.csv").open()))
    assert all(r["completed_at"] for r in readers)
    assert (
        sorted((r["reader_kind"], r["machine_model"]) for r in readers)
        == [
            ("machine", "c2st"),
            ("machine", "kl"),
        ]
        + [("simulated", "")] * 3
    )

    report = _manage(env, "study_report", "demo-knee", "--format", "json")
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)

    started = time.monotonic()
    again = _manage(env, *args, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert time.monotonic() - started < 60
    assert [
        line.strip() for line in again.stdout.splitlines() if "/invite/" in line
    ] == links

    # Serving: SIGTERM (what `make` passes on) and SIGINT (Ctrl-C) each stop
    # the web server and the Celery worker beside it.
    for sig in (signal.SIGTERM, signal.SIGINT):
        _serve_then_stop(env, args[2:], sig)  # without "--no-serve"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _serve_then_stop(env: dict, args: tuple, sig: int) -> None:
    port = _free_port()
    demo = subprocess.Popen(
        [sys.executable, "manage.py", "demo", "--addr", f"127.0.0.1:{port}", *args],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # so the signal reaches the demo alone
    )
    try:
        for line in demo.stdout:
            if "stops the web server and the worker" in line:
                break
        # Keep reading, so a full pipe never holds the demo up on its way out;
        # the lines are kept to say what it was doing if it does not stop.
        output: list[str] = []
        threading.Thread(target=lambda: output.extend(demo.stdout), daemon=True).start()
        for _ in range(100):
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/favicon.ico"
                ) as r:
                    assert r.status == 200
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError(f"nothing answers on port {port}")
        workers = _children(demo.pid)
        if not Path(f"/proc/{demo.pid}").exists():
            pytest.skip("no /proc to find the worker in")
        assert workers, "the demo runs no worker"
        demo.send_signal(sig)
        try:
            # A busy machine (the suite's other processes) can slow the worker's
            # warm shutdown; a demo that never stops still fails here.
            code = demo.wait(timeout=120)
        except subprocess.TimeoutExpired:
            log = Path(args[args.index("--workdir") + 1]) / "worker.log"
            tail = log.read_text()[-3000:] if log.exists() else "(no worker log)"
            raise AssertionError(
                f"the demo did not stop on {sig!r}:\n{''.join(output)[-3000:]}\n"
                f"worker log:\n{tail}"
            ) from None
        assert code == 0, sig
        for _ in range(100):
            if not any(_alive(pid) for pid in workers):
                break
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in workers), f"worker left after {sig!r}"
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)


def test_the_demo_shows_the_shipped_sample_and_generator_without_training(tmp_path):
    """No training: real knees from assets/knee-kl-sample and synthetic ones made
    by a real worker with assets/weights/knee-default.pt."""
    from turingtest.demo import REAL_SAMPLE, SHIPPED_GENERATOR

    env = _demo_env(tmp_path)
    workdir = tmp_path / "demo"
    args = ("demo", "--no-serve", "--workdir", str(workdir), "--readers", "2")
    run = _manage(env, *args, "--per-grade", "2")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert not (workdir / "runs").exists()  # nothing was trained
    out = tmp_path / "results"
    assert (
        _manage(env, "export_results", "demo-knee", "--out", str(out)).returncode == 0
    )
    main = [
        r for r in csv.DictReader((out / "images.csv").open()) if r["role"] == "main"
    ]
    assert {r["generator"] for r in main if r["truth"] == "synthetic"} == {
        "knee-default"
    }
    registered = _manage(env, "shell", "-c", SHOW_GENERATOR).stdout.strip()
    assert registered.endswith(SHIPPED_GENERATOR.name)
    real = sum(1 for _ in REAL_SAMPLE.rglob("*.png"))
    assert f"{real} imported" in run.stdout


SHOW_GENERATOR = (
    "from turingtest.generation.models import Generator; "
    "print(Generator.objects.get().checkpoint)"
)
