"""Django's Redis cache, with one Redis client per connection pool.

Django's ``RedisCacheClient`` makes a new ``redis.Redis`` for every cache
operation, and redis-py builds its table of response callbacks (some 200
entries) in each one: about a millisecond of CPU per ``cache.get``, more than
the round trip to Redis. The reader's requests make two or three cache
operations each (session, user, image tokens), so this backend makes each
pool's client once and reuses it; a ``redis.Redis`` is safe to share between
threads, and its pool reconnects after a fork.
"""

from __future__ import annotations

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class ReusedRedisCacheClient(RedisCacheClient):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients.setdefault(
                id(pool), self._client(connection_pool=pool)
            )
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = ReusedRedisCacheClient
