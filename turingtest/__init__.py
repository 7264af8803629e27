"""turingtest: visual Turing tests of synthetic medical images.

Importing the package loads nothing: ``generator`` imports the pure
``turingtest.domain`` and must not pull in Celery or Django with it. Django
processes load the Celery app when the studies app is ready (so that
``shared_task`` binds to it), and ``celery -A turingtest`` finds
``turingtest.celery`` by itself.
"""


def __getattr__(name: str):
    if name == "celery_app":
        from turingtest.celery import app

        return app
    raise AttributeError(f"module 'turingtest' has no attribute {name!r}")


__all__ = ["celery_app"]
