"""CPU seconds of the processes serving the app under load, read from /proc.

Shared by ``readers_load.py`` and ``saturation_before.py``. It imports
nothing of the app, so ``saturation_before.py`` can use it beside an earlier
checkout's code.
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu(stack, *fronts: subprocess.Popen | None) -> dict[int, float]:
    """CPU seconds of every process serving the app: gunicorn's master and
    workers (its process group), those of each front server given (nginx),
    and the PostgreSQL backends connected to the app's database, found by
    their process titles (keyed by negative pid). Redis, shared with the rest
    of the machine, is left out."""
    groups = {stack.server.pid} | {front.pid for front in fronts if front}
    backend = f" {stack.pg_name} ".encode() if stack.pg_admin_url else None
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            if os.getpgid(pid) in groups:
                pids.append(pid)
            elif backend and backend in (entry / "cmdline").read_bytes().replace(
                b"\0", b" "
            ):
                pids.append(-pid)
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            pass
    return {pid: cpu_seconds(abs(pid)) for pid in pids}


class CpuMeter:
    """``server_cpu`` over a window, sampled every ``every`` seconds.

    A process that ends inside the window (a PostgreSQL backend closed when
    its connection reaches CONN_MAX_AGE, a recycled worker) keeps the CPU of
    its last sample, where two samples alone would lose all of it.
    ``start()`` and ``stop()`` return samples for :func:`cpu_used`.
    """

    def __init__(self, stack, *fronts: subprocess.Popen | None, every: float = 0.5):
        self.stack, self.fronts, self.every = stack, fronts, every
        self.seen: dict[int, float] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _sample(self) -> dict[int, float]:
        sample = server_cpu(self.stack, *self.fronts)
        self.seen.update(sample)
        return sample

    def _watch(self) -> None:
        while not self.done.wait(self.every):
            self._sample()

    def start(self) -> dict[int, float]:
        first = self._sample()
        self.thread.start()
        return first

    def stop(self) -> dict[int, float]:
        self.done.set()
        self.thread.join()
        self._sample()
        return dict(self.seen)


def cpu_used(
    before: dict[int, float], after: dict[int, float], part: str = "all"
) -> float:
    """CPU seconds between two ``server_cpu`` samples (new processes from 0):
    of ``part`` "all", "gunicorn" (with any front server) or "postgresql"."""
    keep = {"all": lambda pid: True, "gunicorn": lambda pid: pid > 0}.get(
        part, lambda pid: pid < 0
    )
    return sum(
        seconds - before.get(pid, 0.0) for pid, seconds in after.items() if keep(pid)
    )
