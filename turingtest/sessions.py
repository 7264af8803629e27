"""Django's cached_db sessions, with the signed-in user's row read beside them.

Every request of a signed-in reader reads its session from the cache, then
the user's row (``turingtest.middleware.cached_user``): two round trips to
Redis, each costing more CPU in redis-py than Redis spends answering. A
session key belongs to one user for its whole life (Django gives a session a
new key at every sign-in), so once this process has seen whose session a key
is, the next request reads the session and that user's cached row in one
``get_many``. The row is only a candidate: ``cached_user`` takes it only for
the user id the session names, and checks it as it checks any cached row.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.sessions.backends import cached_db

# session key -> the user id it was seen signed in with, in this process.
# Cleared when full: a forgotten key only costs its next request a second read.
_USER_OF_SESSION: dict[str, Any] = {}
_USER_OF_SESSION_MAX = 50_000


def user_cache_key(user_id) -> str:
    return f"tt:user:{user_id}"


def remember_user_of_session(session_key: str | None, user_id) -> None:
    if session_key is None or settings.SESSION_CACHE_ALIAS != "default":
        return  # the user's row is in the default cache: one read needs both there
    if len(_USER_OF_SESSION) >= _USER_OF_SESSION_MAX:
        _USER_OF_SESSION.clear()
    _USER_OF_SESSION[session_key] = user_id


class SessionStore(cached_db.SessionStore):
    # The cached row of the user this session was last seen with, read in the
    # same round trip as the session, or None.
    user_beside: Any = None

    def load(self) -> dict:
        user_id = _USER_OF_SESSION.get(self.session_key or "")
        if user_id is None:
            return super().load()
        key = self.cache_key
        try:
            found = self._cache.get_many([key, user_cache_key(user_id)])
        except Exception:  # as Django's load: an unreadable key is no session
            found = {}
        data = found.get(key)
        if data is None:
            return super().load()  # from the database, as Django does
        self.user_beside = found.get(user_cache_key(user_id))
        return data
