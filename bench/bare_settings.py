"""Production settings with ``bench/bare_urls.py`` as the URL configuration."""

from turingtest.settings import *  # noqa: F403

ROOT_URLCONF = "bench.bare_urls"
