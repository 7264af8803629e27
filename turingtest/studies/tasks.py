"""Celery tasks: interfaces like views, taking primary keys and calling services.

``generation_job_run`` is routed to the "gpu" queue (settings). It is
idempotent and acknowledged late, so a task whose worker dies is safe to run
again; see :mod:`turingtest.studies.generation` for how a job whose worker
was killed gets queued again.
"""

from __future__ import annotations

import logging
import threading

from celery import shared_task
from celery.signals import worker_ready, worker_shutting_down
from django.db import close_old_connections, connection

from turingtest.studies import generation
from turingtest.studies.machine_training import machine_reader_train
from turingtest.studies.models import Enrollment, Reader, Study
from turingtest.studies.report import study_report_refresh

log = logging.getLogger(__name__)


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


# --- machine readers -----------------------------------------------------------


@shared_task(
    name="turingtest.studies.tasks.machine_reader_run",
    acks_late=True,
    reject_on_worker_lost=True,
)
def machine_reader_run(study_id: int, model: str) -> dict:
    """Train and add a machine reader (torch: routed to the "gpu" queue).

    Idempotent: a study that has a reader of this model already, or is
    gone, is left as it is. Its answers are written in one transaction, so a
    worker lost while training leaves nothing behind to undo.
    """
    if not connection.in_atomic_block:
        # A worker drops a connection that went stale between tasks; a caller
        # inside a transaction (the command, a test) keeps its own.
        close_old_connections()
    study = Study.objects.filter(pk=study_id).first()
    if (
        study is None
        or Enrollment.objects.filter(
            study=study, reader__kind=Reader.Kind.MACHINE, reader__machine_model=model
        ).exists()
    ):
        return {"study": study_id, "model": model, "ran": False}
    run = machine_reader_train(study=study, model=model)
    return {
        "study": study_id,
        "model": model,
        "ran": True,
        "reader": run.enrollment.reader.code,
        "seconds": round(run.seconds, 1),
    }


# --- the study report ----------------------------------------------------------


@shared_task(
    name="turingtest.studies.tasks.study_report_build",
    acks_late=True,
    reject_on_worker_lost=True,
)
def study_report_build(study_id: int) -> dict:
    """Build and store a study's report unless the stored one is current.

    Celery's Django fix-up closes stale connections around each task run by
    a worker (and leaves those of an eager run, a test's, alone).
    """
    stored, rebuilt = study_report_refresh(study_id=study_id)
    if stored is None:
        return {"study": study_id, "built": False}
    return {"study": study_id, "built": rebuilt, "answers": stored.answers_count}
