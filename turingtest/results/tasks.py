"""Celery tasks of results: interfaces like views, taking primary keys and calling services."""

from __future__ import annotations

from celery import shared_task

from turingtest.results.report import study_report_refresh

# The task names are the wire names queued messages carry (and settings
# route): they stay as they were when these tasks lived in turingtest.studies,
# so a message queued before an upgrade still finds its task.


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
