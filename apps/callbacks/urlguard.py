"""Callback URL rules: the shape checked at acceptance, the address checked again at delivery."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

CALLBACK_URL_MAX = 2048


def callback_url_check(value: str) -> str:
    """An absolute http(s) URL of at most 2,048 characters without user-info; ValueError otherwise."""
    if not isinstance(value, str) or not value:
        raise ValueError("an absolute http or https URL is required")
    if len(value) > CALLBACK_URL_MAX:
        raise ValueError(f"longer than {CALLBACK_URL_MAX} characters")
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError for a port out of range
    except ValueError:
        raise ValueError("not a valid URL") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("an absolute http or https URL is required")
    if parts.username is not None or parts.password is not None:
        raise ValueError("user-info (user:password@) is not allowed in callback URLs")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise ValueError("whitespace and control characters are not allowed in URLs")
    if port == 0:
        raise ValueError("port 0 is not a valid port")
    return value


# --- Delivery-time guard (SSRF) ---------------------------------------------------------------------

Resolver = Callable[[str, int], list[str]]

# Cloud metadata endpoints that are not covered by the private/link-local ranges below.
_METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),
}
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


class CallbackRefused(Exception):
    """The callback URL resolves to an address deliveries may not reach.

    `final` when trying again cannot help: our own rules refuse the address (or the host name can
    never resolve), as opposed to a name that did not resolve this time.
    """

    def __init__(self, message: str, *, final: bool) -> None:
        super().__init__(message)
        self.final = final


@dataclass(frozen=True)
class CheckedTarget:
    """Where to connect: the checked address, and the host name for the Host header and TLS."""

    address: str
    hostname: str
    port: int


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def address_forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why this address is off limits for callbacks, or None if it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address_forbidden(address.ipv4_mapped)
    if address in _METADATA_ADDRESSES:
        return "cloud metadata address"
    checks = [
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("CGNAT", isinstance(address, ipaddress.IPv4Address) and address in _CGNAT),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    ]
    for label, hit in checks:
        if hit:
            return f"{label} address"
    return None


def callback_target_check(
    url: str,
    *,
    allow_private: bool,
    allowed_hosts: Iterable[str] = (),
    resolver: Resolver = system_resolver,
) -> CheckedTarget:
    """Resolve the URL's host and pick an address deliveries may connect to; CallbackRefused if none."""
    parts = urlsplit(url)
    hostname = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        addresses = resolver(hostname, port)
    except UnicodeError as exc:  # a label IDNA cannot encode (over 63 characters, say): never resolvable
        raise CallbackRefused(f"invalid host name {hostname[:100]!r}: {exc}", final=True) from None
    except OSError as exc:
        raise CallbackRefused(f"cannot resolve {hostname}: {exc}", final=False) from None
    if not addresses:
        raise CallbackRefused(f"cannot resolve {hostname}", final=False)
    exempt = allow_private or hostname.lower() in {host.lower() for host in allowed_hosts}
    refusals = []
    for text in addresses:
        address = ipaddress.ip_address(text.split("%")[0])
        reason = address_forbidden(address)
        # Cloud metadata endpoints stay refused even where private addresses are allowed.
        if reason is None or (exempt and reason != "cloud metadata address"):
            return CheckedTarget(address=str(address), hostname=hostname, port=port)
        refusals.append(f"{address} ({reason})")
    raise CallbackRefused(f"{hostname} resolves only to refused addresses: {', '.join(refusals)}", final=True)
