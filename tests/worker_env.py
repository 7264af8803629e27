"""Each pytest-xdist worker gets Redis databases of its own.

Loaded with ``-p tests.worker_env`` (pyproject's addopts), before Django's
settings are read: a worker's Celery broker, results and any live stack it
starts then never meet another worker's. pytest-django already gives each
worker a test database of its own (``test_<name>_gw0``, ...).
"""

import os
from urllib.parse import urlsplit, urlunsplit

# Databases the live-stack tests name for themselves (11-13): workers stay below.
FIRST_FREE = 1


def _worker_index() -> int | None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker[2:]) if worker.startswith("gw") else None


def _own_redis(url: str, index: int) -> str:
    parts = urlsplit(url)
    base = int(parts.path.strip("/") or 0)
    database = base + FIRST_FREE + index
    if database >= 11:
        raise RuntimeError(
            f"pytest-xdist worker gw{index} would share Redis database {database}; "
            "run fewer workers (-n)."
        )
    return urlunsplit(parts._replace(path=f"/{database}"))


index = _worker_index()
if index is not None and os.environ.get("REDIS_URL"):
    os.environ["REDIS_URL"] = _own_redis(os.environ["REDIS_URL"], index)
