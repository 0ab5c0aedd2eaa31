"""Outgoing requests to addresses a partner chose (webhooks, decision 0094): only public addresses.

A URL's host is resolved and every address it resolves to must be public: loopback, private,
link-local (cloud metadata 169.254.169.254), shared (100.64.0.0/10), multicast, reserved and
unspecified addresses, IPv4 or IPv6 (IPv4-mapped and 6to4/Teredo forms unwrapped), are refused.
`pinned` gives the request to send: the URL with the checked address in place of the name, the Host
header and the TLS server name kept, so that a DNS answer that changes between the check and the
connection (rebinding) gains nothing.

`resolve` is the resolver (tests replace it with a fake); `allow_private` (YUYUE_WEBHOOK_PRIVATE_
ADDRESSES, refused in production) lets local fakes through in development and tests.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]


class AddressRefused(Exception):
    """The URL's host does not resolve, or resolves to an address that is not public."""


async def system_resolve(host: str, port: int) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


resolve: Resolver = system_resolve
allow_private = False


def configure(private_addresses: bool) -> None:
    global allow_private
    allow_private = private_addresses


def _unwrap(address: IP) -> IP:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address.teredo is not None:
            return address.teredo[1]
    return address


def is_public(text: str) -> bool:
    """A unicast address routed on the public internet (ipaddress's `is_global`, less multicast)."""
    try:
        address = _unwrap(ipaddress.ip_address(text.split("%", 1)[0]))
    except ValueError:
        return False
    return address.is_global and not address.is_multicast


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


async def public_addresses(url: str) -> list[str]:
    """The addresses of the URL's host, all public; `AddressRefused` otherwise."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    literal = _literal(host)
    if literal is not None:
        found = [literal]
    else:
        try:
            found = await resolve(host, port)
        except (OSError, UnicodeError):
            found = []
        if not found:
            raise AddressRefused(f"{host} does not resolve")
    if not allow_private:
        refused = [a for a in found if not is_public(a)]
        if refused:
            raise AddressRefused(f"{host} resolves to an address that is not public ({refused[0]})")
    return found


@dataclass(frozen=True)
class Pinned:
    """The request to send: the URL at the checked address, its Host header and TLS server name."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, str] = field(default_factory=dict)


async def pinned(url: str) -> Pinned:
    """Resolve and check the URL's host now, and point the URL at the first checked address."""
    addresses = await public_addresses(url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    if _literal(host) is not None:
        return Pinned(url)
    address = addresses[0]
    netloc = f"[{address}]" if ":" in address else address
    if parts.port:
        netloc += f":{parts.port}"
    target = parts._replace(netloc=netloc).geturl()
    host_header = host + (f":{parts.port}" if parts.port else "")
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return Pinned(target, {"Host": host_header}, extensions)
