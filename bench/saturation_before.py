"""The reader path at saturation, this checkout beside an earlier commit, in turns.

    .venv/bin/python bench/saturation_before.py [--before 10c74a6] [--rounds 3]
        [--seconds 60] [--readers 50] [--per-grade 12]

``bench/readers_load.py --scenarios saturation`` gives requests per server
CPU-second, a figure that moves with the machine (this shared machine has
served a bare authenticated JSON view at anywhere from 420 to 1,200 per
CPU-second). This script asks the other question, on the same machine at the
same time: how many more reader requests does a CPU-second serve now than it
did at ``--before``, by default the reader path as its own
``bench/readers_load.py`` measured it at 60 requests/s, where the work on it
started.

``--before`` is checked out into a temporary git worktree. Each round runs
the same load against it and against this checkout, in turns (which goes
first alternates by round), each in a child process using that tree's own
``bench/readers_load.py`` and ``LiveStack``: gunicorn (3 gthread workers x 4
threads, the tree's production settings, its image view serving the files)
on a fresh PostgreSQL database seeded by the tree's own code (12 real and 12
synthetic phantoms per KL grade, 4 practice cases, grading then detection),
Redis on loopback with its database emptied first; 50 readers arriving over
5 s, signing in through the login form, then clicking every 0-0.3 s with the
same misbehaviour (double submits, reloads, aborted answers and downloads,
two tabs). Both trees run on this checkout's virtual environment, so the
earlier code also gets the Redis client's C reply parser (hiredis), which it
did not list. Requests and server CPU (gunicorn's processes and the app's
PostgreSQL backends, from /proc, sampled every 0.5 s so that a backend
closed inside the window still counts) are counted in a window that opens
once every reader has signed in, so password hashing (PBKDF2 before,
Argon2 now) is left out of both, and closes 2 s before the run stops or
when the first reader finishes the study, whichever comes first. Each
tree's database audit runs after its run, as its ``readers_load.py`` prints
it.

Prints each run's requests per server CPU-second and, per round, the ratio
now / before; the median of the rounds is the figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis

# This script's own folder, whichever tree a child run measures.
from proc_cpu import CpuMeter, cpu_used

ROOT = Path(__file__).resolve().parent.parent

# The reader path as its starting figures were measured (60 requests/s; a
# submit 24-37 queries): the first commit at which bench/readers_load.py runs
# as committed (at d228ebb, where it was added, it passes its audit an
# argument the test helper gained here). The app's code is d228ebb's but for
# formatting and comments.
BEFORE = "10c74a6"


def child(
    tree: Path, seconds: float, readers: int, per_grade: int, result_path: Path
) -> None:
    """One saturation run against ``tree``, with that tree's own bench code."""
    spec = importlib.util.spec_from_file_location(
        "readers_load_of_tree", tree / "bench" / "readers_load.py"
    )
    rl = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = rl
    spec.loader.exec_module(rl)  # puts the tree first on sys.path, as it runs

    done_at: list[float] = []
    signed_in = threading.Event()
    runs: list = []  # the run, once it records its first reply
    record = rl.Run.record

    def counted(self, kind: str, reply) -> None:
        if not runs:
            runs.append(self)
        done_at.append(time.monotonic())
        record(self, kind, reply)
        if kind == "sign-in" and len(self.latencies["sign-in"]) >= readers:
            signed_in.set()

    rl.Run.record = counted

    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/11")
    # Neither tree finds the other's cached sessions, users or maps.
    redis.Redis.from_url(redis_url).flushdb()
    base = Path(tempfile.mkdtemp(prefix="turingtest-before-"))
    stack = rl.LiveStack(
        base, name="bench_before", production=True, redis_url=redis_url,
        database_url=os.environ.get(
            "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"
        ),
    )  # fmt: skip
    try:
        stack.setup()
        info = stack.seed(
            slug="fast", readers=readers, per_grade=per_grade, practice=4, size=224
        )
        stack.start(workers=3, threads=4)
        window: dict = {}

        def sample() -> None:
            stop = time.monotonic() + seconds - 2
            signed_in.wait(timeout=max(1.0, stop - 5 - time.monotonic()))
            meter = CpuMeter(stack)
            window["start"], window["before"] = time.monotonic(), meter.start()
            # The load falls off once readers start finishing the study.
            while time.monotonic() < stop and not (runs and runs[0].finished):
                time.sleep(0.1)
            window["end"], window["after"] = time.monotonic(), meter.stop()

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        # Readers arrive as the earlier bench had them arrive: over 5 s for 50.
        arrive = min(30.0, 0.1 * readers)
        options = {}
        if "think" in inspect.signature(rl.reading_run).parameters:
            options = {"think": (0.0, 0.3), "arrive_over": arrive}
        run, elapsed = rl.reading_run(stack, info, seconds, 2, **options)
        sampler.join(timeout=30)
        summary = rl.report_run(stack, info, run, elapsed)
        if "after" not in window:
            raise SystemExit("the CPU window was not measured (see above)")
        requests = sum(window["start"] <= t < window["end"] for t in done_at)
        cpu = cpu_used(window["before"], window["after"])
        result = {
            "requests": requests,
            "span": window["end"] - window["start"],
            "cpu": cpu,
            "errors": len(run.errors),
            "problems": bool(summary.get("problems") or summary.get("duplicates")),
            "signed_in": signed_in.is_set(),
        }
        result_path.write_text(json.dumps(result))
    finally:
        stack.close()
        shutil.rmtree(base, ignore_errors=True)


def run_child(tree: Path, result_path: Path, args: argparse.Namespace) -> int:
    """The child for ``tree``; on Ctrl-C it is let finish its clean-up
    (gunicorn stopped, its database dropped) before this stops."""
    child_process = subprocess.Popen(
        [
            sys.executable, __file__, "--child", str(tree),
            "--result", str(result_path), "--seconds", str(args.seconds),
            "--readers", str(args.readers), "--per-grade", str(args.per_grade),
        ],
        cwd=tree,
    )  # fmt: skip
    try:
        return child_process.wait()
    except KeyboardInterrupt:
        child_process.wait(timeout=120)
        raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default=BEFORE, help="the earlier commit")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument(
        "--per-grade", type=int, default=12,
        help="real and synthetic cases per KL grade: 12 makes a 120-case study "
        "that no reader finishes within the run",
    )  # fmt: skip
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.seconds, args.readers, args.per_grade, args.result)
        return

    work = Path(tempfile.mkdtemp(prefix="turingtest-worktree-"))
    earlier = work / "before"
    rows = []
    failed = False
    try:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(earlier), args.before],
            check=True,
        )  # fmt: skip
        described = subprocess.run(
            ["git", "-C", str(earlier), "log", "-1", "--format=%h %ad %s", "--date=short"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        now = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        print(f"before: {described}\nnow:    {now} ({ROOT})")
        print(
            f"{args.readers} readers clicking every 0-0.3 s for {args.seconds:.0f} s "
            f"through {args.per_grade * 10} cases; gunicorn 3 gthread workers x 4 "
            f"threads on {os.cpu_count()} CPUs"
        )
        for n in range(args.rounds):
            row = {}
            # Turns alternate, so neither tree always runs on a machine that
            # the other has just warmed or heated.
            turns = [("before", earlier), ("now", ROOT)]
            for label, tree in turns if n % 2 == 0 else turns[::-1]:
                print(f"\n== round {n + 1}, {label}", flush=True)
                result_path = work / f"{label}-{n}.json"
                code = run_child(tree, result_path, args)
                if code or not result_path.exists():
                    print(f"   the {label} run failed (exit {code})")
                    failed = True
                    continue
                result = json.loads(result_path.read_text())
                failed |= result["problems"] or not result["signed_in"]
                row[label] = result
            rows.append(row)
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(earlier)],
            check=False, capture_output=True,
        )  # fmt: skip
        subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], check=False)
        shutil.rmtree(work, ignore_errors=True)

    print("\nround  tree     requests  window s  server CPU s  per CPU-second  errors")
    ratios = []
    for n, row in enumerate(rows, 1):
        rates = {}
        for label in ("before", "now"):
            r = row.get(label)
            if not r:
                continue
            rates[label] = r["requests"] / r["cpu"] if r["cpu"] else float("nan")
            print(
                f"{n:>5}  {label:<7}{r['requests']:>9}{r['span']:>10.0f}"
                f"{r['cpu']:>14.1f}{rates[label]:>16.0f}{r['errors']:>8}"
                + ("  (not every reader signed in)" if not r["signed_in"] else "")
            )
        if len(rates) == 2:
            ratios.append(rates["now"] / rates["before"])
            print(f"       now / before per CPU-second: {ratios[-1]:.1f}x")
    if ratios:
        print(
            f"\nnow / before, requests per server CPU-second: median "
            f"{statistics.median(ratios):.1f}x over {len(ratios)} round(s)"
        )
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
