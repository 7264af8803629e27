"""Celery application.

With ``REDIS_URL`` set, tasks travel through Redis to any number of workers
(``celery -A turingtest worker -Q gpu`` on GPU machines). Without it, Kombu's
``filesystem://`` transport carries them through folders under ``var/`` to a
local worker process, so the embedded default needs no running server.
"""

import os
from pathlib import Path

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "turingtest.settings")

app = Celery("turingtest")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def broker_folders_create() -> None:
    """The filesystem transport expects its folders to exist, in sender and worker alike."""
    options = app.conf.broker_transport_options or {}
    if str(app.conf.broker_url).startswith("filesystem"):
        for key in (
            "data_folder_in",
            "data_folder_out",
            "processed_folder",
            "control_folder",
        ):
            if options.get(key):
                Path(options[key]).mkdir(parents=True, exist_ok=True)


@app.on_after_configure.connect
def _on_configure(sender, **kwargs) -> None:
    broker_folders_create()
