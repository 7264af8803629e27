"""CPU seconds of the processes serving the app under load, read from /proc.

Shared by ``readers_load.py`` and ``saturation_before.py``. It imports
nothing of the app, so ``saturation_before.py`` can use it beside an earlier
checkout's code.
"""

from __future__ import annotations

import os
import subprocess
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
    and the PostgreSQL backends connected to the app's database (keyed by
    negative pid). Redis, shared with the rest of the machine, is left out."""
    groups = {stack.server.pid} | {front.pid for front in fronts if front}
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) in groups:
                    pids.append(int(entry.name))
            except ProcessLookupError:
                pass
    if stack.pg_admin_url:
        pids += [
            -pid
            for (pid,) in stack.query(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
        ]
    return {pid: cpu_seconds(abs(pid)) for pid in pids}


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
