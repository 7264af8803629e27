"""Celery application.

With ``REDIS_URL`` set, tasks travel through Redis to any number of workers
(``celery -A turingtest worker -Q gpu`` on GPU machines). Without it, Kombu's
``filesystem://`` transport carries them through folders under ``var/`` to a
local worker process, so the embedded default needs no running server.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "turingtest.settings")

app = Celery("turingtest")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
