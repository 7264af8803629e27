"""turingtest: visual Turing tests of synthetic medical images."""

from turingtest.celery import app as celery_app

__all__ = ["celery_app"]
