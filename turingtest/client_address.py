"""The client's address, as told by the reverse proxies this deployment trusts.

Behind nginx every request comes from nginx (127.0.0.1), so lockouts and
throttles keyed on ``REMOTE_ADDR`` would treat every reader as one client.
``X-Forwarded-For`` is believed only when the request comes from an address
in ``TRUSTED_PROXIES``, and then read from the right: the first address that
is not a trusted proxy is the client. Addresses further left were written by
the client itself and are never believed.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=16)
def _networks(entries: tuple[str, ...]) -> tuple[ipaddress._BaseNetwork, ...]:
    return tuple(
        ipaddress.ip_network(entry.strip(), strict=False)
        for entry in entries
        if entry.strip()
    )


def _address(value: str) -> Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def client_address(request: HttpRequest) -> str:
    """The address of the client that sent ``request`` (django-axes calls this too)."""
    remote = request.META.get("REMOTE_ADDR", "") or ""
    trusted = _networks(tuple(settings.TRUSTED_PROXIES))

    def is_proxy(address: Address | None) -> bool:
        return address is not None and any(address in net for net in trusted)

    if not is_proxy(_address(remote)):
        return remote  # a direct client: whatever it says in headers is ignored
    # Repeated headers arrive joined by commas, in the order they were sent.
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    for hop in reversed(forwarded.split(",")):
        address = _address(hop)
        if address is None:
            break  # not written by a proxy we trust: stop believing the header
        if not is_proxy(address):
            return str(address)
    return remote
