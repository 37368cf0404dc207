"""Who a request comes from, as the rate limits count it.

The peer address, or, when the peer is one of ``PVSETTLE_TRUSTED_PROXIES`` (nginx in
front of the server), the address those proxies name in ``X-Forwarded-For``: read from the right,
the first hop that is not a trusted proxy (nginx's ``$proxy_add_x_forwarded_for`` appends the
address it saw; what the client wrote is further left and not believed). Without trusted proxies
``X-Forwarded-For`` is ignored, so writing one evades nothing. An IPv6 source counts by its /64,
which one subscriber usually holds whole.

Both limits that count requests by where they come from use it: refused deliveries to
/pay/notify (``pay_api.limits``) and logins to the mini-program API, which have no user yet
(``miniprogram_api.app``). Behind nginx without ``PVSETTLE_TRUSTED_PROXIES`` every client would
be nginx, and one busy minute would lock every owner out.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

from webapp.keys import settings_key

UNKNOWN = "unknown"  # the source of a delivery without a peer address (a unix socket)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str | None) -> Address | None:
    """An address as peers and proxies write it (``1.2.3.4``, ``1.2.3.4:5678``, ``[::1]:80``)."""
    text = (text or "").strip()[:64]
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, proxies: Sequence[Network]) -> bool:
    return any(address in network for network in proxies)


def source_of(remote: str | None, forwarded_for: str | None, proxies: Sequence[Network]) -> str:
    """The source a delivery counts against (see the module docstring).

    Parameters
    ----------
    remote : the peer address (``request.remote``)
    forwarded_for : the ``X-Forwarded-For`` header, if any
    proxies : the trusted proxies (``Settings.trusted_proxy_networks``)
    """
    address = _address(remote)
    if address is None:
        return UNKNOWN
    if forwarded_for and _trusted(address, proxies):
        for hop in reversed(forwarded_for.split(",")):
            named = _address(hop)
            if named is None:
                break  # garbled: the last hop a trusted proxy vouched for is all we know
            address = named
            if not _trusted(named, proxies):
                break
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def client_of(request: web.Request) -> str:
    """:func:`source_of` the request, by the app's trusted proxies."""
    proxies = request.config_dict[settings_key].trusted_proxy_networks
    return source_of(request.remote, request.headers.get("X-Forwarded-For"), proxies)
