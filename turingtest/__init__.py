"""turingtest: visual Turing tests of synthetic medical images.

Importing the package loads nothing: ``turingtest.stats`` and
``turingtest.domain`` are pure Python and NumPy/SciPy, so the generator
package (which never imports Django) may use them. The Celery app
(``turingtest.celery``) is loaded by the studies app when Django starts, and
found by ``celery -A turingtest``.
"""
