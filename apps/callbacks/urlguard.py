"""Callback URL rules: the shape checked at acceptance, the address checked again at delivery."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

import idna
from pydantic import AfterValidator

CALLBACK_URL_MAX = 2048
# RFC 1035: labels of at most 63 octets, names of at most 255 on the wire (253 characters as text).
HOST_LABEL_MAX = 63
HOST_NAME_MAX = 253
# An ASCII label: letters, digits and inner hyphens (RFC 1123), and underscores, which DNS and the
# system resolver take (compose service names like callback_receiver) though IDNA's rules do not.
_ASCII_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?")


def callback_host_ascii(host: str) -> str:
    """The host as a resolver looks it up (IP literals as they are, names in IDNA 2008 A-labels);
    ValueError saying why no resolver ever could: a label over 63 characters, a name over 253,
    characters IDNA refuses.

    The `idna` package, not Python's "idna" codec: that one is IDNA 2003, and only raises (a
    UnicodeError out of the resolver) once a delivery tries to resolve the name.
    """
    if ":" in host:
        return host  # an IPv6 literal, which urlsplit has checked
    name = host.removesuffix(".")  # the root label of a fully qualified name
    if all(label.isascii() and label.isdigit() for label in name.split(".")):
        try:
            return str(ipaddress.IPv4Address(name))
        except ValueError:
            raise ValueError(f"the host {host!r} is not a valid IPv4 address") from None
    try:
        # UTS #46 as browsers apply it: case folded, full-width dots are dots.
        mapped = idna.uts46_remap(name, std3_rules=False, transitional=False)
    except idna.IDNAError as exc:
        raise ValueError(f"the host name is not valid under IDNA rules: {exc}") from None
    labels = []
    for label in mapped.split("."):
        if not label:
            raise ValueError("the host name has an empty label (two dots in a row, or a leading dot)")
        if label.isascii() and not label.startswith("xn--"):
            if not _ASCII_LABEL.fullmatch(label):
                raise ValueError(
                    f"the host name's label {label[:70]!r} may hold only letters, digits, hyphens "
                    "(not first or last) and underscores"
                )
            encoded = label
        else:
            try:
                encoded = idna.alabel(label).decode("ascii")
            except idna.IDNAError as exc:
                raise ValueError(f"the host name is not valid under IDNA rules: {exc}") from None
        if len(encoded) > HOST_LABEL_MAX:
            raise ValueError(f"the host name has a label longer than {HOST_LABEL_MAX} characters")
        labels.append(encoded)
    ascii_name = ".".join(labels)
    if len(ascii_name) > HOST_NAME_MAX:
        raise ValueError(f"the host name is longer than {HOST_NAME_MAX} characters")
    return ascii_name


def callback_url_check(value: str) -> str:
    """An absolute http(s) URL of at most 2,048 characters without user-info, whose host a resolver
    can look up; ValueError otherwise."""
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
    callback_host_ascii(parts.hostname)
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
    given = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        # Resolved, and named in Host and TLS, as its IDNA 2008 A-labels: what acceptance checked.
        hostname = callback_host_ascii(given)
        addresses = resolver(hostname, port)
    except (ValueError, UnicodeError) as exc:  # a name no resolver ever could look up (stored before checks)
        raise CallbackRefused(f"invalid host name {given[:100]!r}: {exc}", final=True) from None
    except OSError as exc:
        raise CallbackRefused(f"cannot resolve {hostname}: {exc}", final=False) from None
    if not addresses:
        raise CallbackRefused(f"cannot resolve {hostname}", final=False)
    listed = {host.lower() for host in allowed_hosts}
    exempt = allow_private or given.lower() in listed or hostname.lower() in listed
    refusals = []
    for text in addresses:
        address = ipaddress.ip_address(text.split("%")[0])
        reason = address_forbidden(address)
        # Cloud metadata endpoints stay refused even where private addresses are allowed.
        if reason is None or (exempt and reason != "cloud metadata address"):
            return CheckedTarget(address=str(address), hostname=hostname, port=port)
        refusals.append(f"{address} ({reason})")
    raise CallbackRefused(f"{hostname} resolves only to refused addresses: {', '.join(refusals)}", final=True)


# The same rule as a pydantic field type, for the API's bodies and the Kafka message's decoder.
CallbackUrl = Annotated[str, AfterValidator(callback_url_check)]
