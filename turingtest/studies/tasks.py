"""Celery tasks of reading: interfaces like views, taking primary keys and calling services."""

from __future__ import annotations

from celery import shared_task
from django.db import close_old_connections, connection

from turingtest.studies.machine_training import machine_reader_train
from turingtest.studies.models import Enrollment, Reader, Study

# The task's name is the wire name queued messages carry (and settings route
# by); the generation and results tasks keep the same "turingtest.studies.tasks"
# prefix they had before they moved to their apps.


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
