"""Response headers every page carries, and the signed-in user from the cache."""

from collections.abc import Callable

from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.messages.storage import default_storage
from django.http import HttpRequest, HttpResponse
from django.utils.functional import SimpleLazyObject, empty

from turingtest.sessions import remember_user_of_session, user_cache_key

# No inline script anywhere: the reader viewer and the admin load script files.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response


# --- the signed-in user, cached -------------------------------------------------

# Every request of a signed-in user loads the user row. It changes rarely (a
# sign-in, a new password, deactivation), and each save of it drops the
# cached copy (turingtest.studies.signals); a change that bypasses save()
# shows after this long at most.
USER_CACHE_SECONDS = 300


def cached_user(request: HttpRequest):
    """``django.contrib.auth.get_user`` with the user row from the cache.

    A cached user passes the same checks Django makes of a loaded one: the
    session's backend is still configured, the user is active, and the
    session's hash matches the user's password; anything else takes Django's
    own path, which also flushes a session that fails them.
    """
    from django.conf import settings
    from django.contrib import auth
    from django.core.cache import cache
    from django.utils.crypto import constant_time_compare

    try:
        user_id = request.session[auth.SESSION_KEY]
        backend = request.session[auth.BACKEND_SESSION_KEY]
    except KeyError:
        return auth.get_user(request)
    key = user_cache_key(user_id)
    user = getattr(request.session, "user_beside", None)
    if user is None or str(user.pk) != str(user_id):
        user = cache.get(key)
    session_hash = request.session.get(auth.HASH_SESSION_KEY)
    if (
        user is not None
        and backend in settings.AUTHENTICATION_BACKENDS
        and user.is_active
        and session_hash
        and constant_time_compare(session_hash, user.get_session_auth_hash())
    ):
        user.backend = backend
        remember_user_of_session(request.session.session_key, user_id)
        return user
    user = auth.get_user(request)
    if user.is_authenticated:
        cache.set(key, user, timeout=USER_CACHE_SECONDS)
        remember_user_of_session(request.session.session_key, user_id)
    return user


class CachedUserAuthenticationMiddleware(AuthenticationMiddleware):
    """Django's AuthenticationMiddleware, with the user from :func:`cached_user`."""

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        request.user = SimpleLazyObject(lambda: cached_user(request))


class LazyMessageMiddleware(MessageMiddleware):
    """Django's MessageMiddleware, with the message storage made on first use.

    Django builds the storage (a cookie signer and the session's store) for
    every request; the reader API and images never show a message. A
    request that neither adds nor reads one leaves the storage unmade, and
    its response untouched, as Django's would be.
    """

    def process_request(self, request: HttpRequest) -> None:
        request._messages = SimpleLazyObject(lambda: default_storage(request))  # type: ignore[attr-defined]

    def process_response(
        self, request: HttpRequest, response: HttpResponse
    ) -> HttpResponse:
        messages = request.__dict__.get("_messages")
        if isinstance(messages, SimpleLazyObject) and messages._wrapped is empty:
            return response
        return super().process_response(request, response)
