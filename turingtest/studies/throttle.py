"""Backoff for guessing invitation links, per client address.

A wrong link costs nothing the first ``INVITATION_GUESSES_FREE`` times;
after that each one makes the address wait twice as long as the last
(``INVITATION_GUESS_BACKOFF_SECONDS``, doubling, at most
``INVITATION_GUESS_BACKOFF_MAX_SECONDS``) before any link is looked at again.
Nobody is locked out for an hour: a reader who mistyped a few links waits
seconds, a guesser is slowed to a few tries an hour (and a 32-character
random token could not be guessed at any rate). Links that exist but were
used, expired or belong to a closed study are not guesses and do not count.

The count lives in the cache (Redis in production, shared by every web
process) and is forgotten a while after the last wrong link.
"""

from __future__ import annotations

import hashlib
import math
import time

from django.core.cache import cache
from django.http import HttpRequest

from turingtest.client_address import client_address
from turingtest.conf import project_settings


def _conf() -> tuple[int, float, float]:
    conf = project_settings()
    return (
        conf.invitation_guesses_free,
        conf.invitation_guess_backoff_seconds,
        conf.invitation_guess_backoff_max_seconds,
    )


def _key(request: HttpRequest) -> str:
    address = client_address(request)
    return "invitation-guesses:" + hashlib.sha256(address.encode()).hexdigest()[:32]


def invitation_guess_wait(request: HttpRequest, *, now: float | None = None) -> int:
    """Whole seconds the client must wait before a link is looked at; 0: go ahead."""
    state = cache.get(_key(request))
    if not state:
        return 0
    _, until = state
    now = time.time() if now is None else now
    return max(0, math.ceil(until - now))


def invitation_guess_record(request: HttpRequest, *, now: float | None = None) -> int:
    """Count one wrong link from the client; returns the wait it now has."""
    now = time.time() if now is None else now
    free, base, cap = _conf()
    key = _key(request)
    failures, _ = cache.get(key) or (0, 0.0)
    failures += 1
    doublings = min(failures - free - 1, 60)
    delay = 0.0 if failures <= free else min(cap, base * 2.0**doublings)
    cache.set(key, (failures, now + delay), timeout=max(3600, int(2 * cap)))
    return math.ceil(delay)
