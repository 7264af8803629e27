"""The Redis cache backend (turingtest.cache) against the real Redis of REDIS_URL."""

import os
import threading

import pytest

from turingtest.cache import RedisCache

pytestmark = pytest.mark.skipif(
    not os.environ.get("REDIS_URL"), reason="the Redis cache needs REDIS_URL"
)


@pytest.fixture
def redis_cache():
    backend = RedisCache(os.environ["REDIS_URL"], {"KEY_PREFIX": "tt-cache-test"})
    yield backend
    backend.delete_many(["a", "b", "counter"])


def test_stores_and_reads_through_one_client_per_pool(redis_cache):
    redis_cache.set("a", {"x": [1, 2]}, 60)
    redis_cache.set_many({"b": 2}, 60)
    assert redis_cache.get("a") == {"x": [1, 2]}
    assert redis_cache.get_many(["a", "b", "missing"]) == {"a": {"x": [1, 2]}, "b": 2}
    client = redis_cache._cache
    assert client.get_client(write=True) is client.get_client()  # made once, reused


def test_threads_share_the_client_safely(redis_cache):
    redis_cache.set("counter", 0, 60)

    def bump():
        for _ in range(50):
            redis_cache.incr("counter")

    threads = [threading.Thread(target=bump) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert redis_cache.get("counter") == 400
