"""Celery tasks of generation: interfaces like views, taking primary keys and calling services.

``generation_job_run`` is routed to the "gpu" queue (settings). It is
idempotent and acknowledged late, so a task whose worker dies is safe to run
again; see :mod:`turingtest.generation.services` for how a job whose worker
was killed gets queued again.
"""

from __future__ import annotations

import logging
import threading

from celery import shared_task
from celery.signals import worker_ready, worker_shutting_down
from django.db import close_old_connections, connection

from turingtest.generation import services as generation

log = logging.getLogger(__name__)

# The task names are the wire names queued messages carry (and settings
# route): they stay as they were when these tasks lived in turingtest.studies,
# so a message queued before an upgrade still finds its task.


@shared_task(
    name="turingtest.studies.tasks.generation_job_run",
    acks_late=True,
    reject_on_worker_lost=True,
)
def generation_job_run(job_id: int) -> dict:
    close_old_connections()
    job = generation.generation_job_execute(job_id=job_id)
    if job is None:
        return {"job": job_id, "ran": False}
    return {"job": job_id, "ran": True, "status": job.status, "done": job.done}


# --- the lease watchdog, one per worker process --------------------------------

_stop = threading.Event()


def _watch() -> None:
    while not _stop.wait(generation.lease_seconds() / 2):
        try:
            close_old_connections()
            for job_id in generation.generation_jobs_recover():
                log.warning("generation job %s lost its worker; queued again", job_id)
        except Exception:  # the database may be briefly unavailable
            log.exception("generation watchdog")
    connection.close()


@worker_ready.connect
def _start_watchdog(**kwargs) -> None:
    _stop.clear()
    threading.Thread(target=_watch, name="generation-watchdog", daemon=True).start()


@worker_shutting_down.connect
def _stop_watchdog(**kwargs) -> None:
    _stop.set()
