"""Callback URLs: the shape at acceptance, the resolved address at delivery (SSRF guard).

Every resolver here is a stub: nothing is resolved and nothing is connected to.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Any

import pytest

from apps.callbacks.urlguard import (
    CallbackRefused,
    CheckedTarget,
    Resolver,
    callback_target_check,
    callback_url_check,
)

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"
HOST = "hooks.example.test"


class StubResolver:
    """Answers every lookup with fixed addresses and records what it was asked."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = list(addresses)
        self.calls: list[tuple[str, int]] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        return list(self.addresses)


def failing_resolver(host: str, port: int) -> list[str]:
    raise socket.gaierror(socket.EAI_NONAME, f"Name or service not known: {host}:{port}")


# --- callback_url_check --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://hooks.example.test/cb", id="http"),
        pytest.param("https://hooks.example.test/cb", id="https"),
        pytest.param("https://hooks.example.test", id="no_path"),
        pytest.param("https://hooks.example.test:8443/cb?token=abc&x=1#frag", id="port_query_fragment"),
        pytest.param("http://10.0.0.5:8080/cb", id="ip_literal"),
        pytest.param("http://[2001:db8::1]:8080/cb", id="ipv6_literal"),
        pytest.param("https://hooks.example.test:65535/", id="highest_port"),
        pytest.param("HTTPS://Hooks.Example.Test/CB", id="uppercase_scheme_and_host_kept_as_given"),
        pytest.param("https://hooks.example.test/" + "a" * (2048 - 27), id="exactly_2048_characters"),
    ],
)
def test_callback_url_check_accepts_absolute_http_urls_unchanged(url: str) -> None:
    assert callback_url_check(url) == url


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("ftp://hooks.example.test/cb", id="ftp"),
        pytest.param("file:///etc/passwd", id="file"),
        pytest.param("javascript:alert(1)", id="javascript"),
        pytest.param("/charging/callback", id="relative_path"),
        pytest.param("hooks.example.test/cb", id="no_scheme"),
        pytest.param("//hooks.example.test/cb", id="scheme_relative"),
        pytest.param("http://", id="no_host"),
        pytest.param("http:///cb", id="empty_host_with_path"),
        pytest.param("https://:443/cb", id="port_without_host"),
        pytest.param("https://user:secret@hooks.example.test/cb", id="user_and_password"),
        pytest.param("https://user@hooks.example.test/cb", id="user_only"),
        pytest.param("https://:secret@hooks.example.test/cb", id="password_only"),
        pytest.param("https://hooks.example.test/" + "a" * (2049 - 27), id="2049_characters"),
        pytest.param("https://hooks.example.test/a b", id="space_in_path"),
        pytest.param(" https://hooks.example.test/cb", id="leading_space"),
        pytest.param("https://hooks.example.test/cb\n", id="trailing_newline"),
        pytest.param("https://hooks.exa\tmple.test/cb", id="tab_in_host"),
        pytest.param("https://hooks.example.test/\u00a0", id="no_break_space"),
        pytest.param("https://hooks.example.test:65536/cb", id="port_above_65535"),
        pytest.param("https://hooks.example.test:-1/cb", id="negative_port"),
        pytest.param("https://hooks.example.test:http/cb", id="non_numeric_port"),
        pytest.param("http://[::1/cb", id="unclosed_ipv6_bracket"),
        pytest.param("", id="empty"),
        pytest.param(None, id="none"),
        pytest.param(b"https://hooks.example.test/cb", id="bytes"),
    ],
)
def test_callback_url_check_rejects(url: Any) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        callback_url_check(url)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("https://hooks.example.test/cb\x00", id="nul_in_path"),
        pytest.param("\x01https://hooks.example.test/cb", id="leading_control_character"),
    ],
)
def test_callback_url_check_rejects_control_characters(url: str) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        callback_url_check(url)


LABEL_63 = "a" * 63
NAME_253 = ".".join([LABEL_63] * 3 + ["b" * 61])  # 3 x 64 + 61 = 253 characters
NAME_254 = ".".join([LABEL_63] * 3 + ["b" * 62])

assert (len(NAME_253), len(NAME_254)) == (253, 254)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(f"https://{LABEL_63}.example.test/cb", id="label_of_63_characters"),
        pytest.param(f"https://{NAME_253}/cb", id="name_of_253_characters"),
        pytest.param(f"https://{NAME_253}./cb", id="name_of_253_characters_and_the_root_dot"),
        pytest.param("https://hooks.example.test./cb", id="fully_qualified_with_root_dot"),
        pytest.param("https://bücher.example/cb", id="internationalised_name"),
        pytest.param("https://BÜCHER.example/cb", id="internationalised_name_uppercase"),
        pytest.param("https://xn--bcher-kva.example/cb", id="a_label"),
        pytest.param("https://faß.de/cb", id="idna2008_sharp_s"),
        pytest.param("http://callback_receiver:8080/cb", id="underscore_as_in_compose_service_names"),
        pytest.param("http://localhost:8080/cb", id="single_label"),
        pytest.param("http://127.0.0.1/cb", id="ipv4"),
    ],
)
def test_callback_url_check_accepts_host_names_a_resolver_can_look_up(url: str) -> None:
    assert callback_url_check(url) == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        pytest.param(f"https://{LABEL_63}a.example.test/cb", "63", id="label_of_64_characters"),
        pytest.param(f"https://{NAME_254}/cb", "253", id="name_of_254_characters"),
        pytest.param("https://hooks..example.test/cb", "empty", id="empty_label"),
        pytest.param("https://.example.test/cb", "empty", id="leading_dot"),
        pytest.param("https://-hooks.example.test/cb", "hooks", id="label_starting_with_a_hyphen"),
        pytest.param("https://hooks-.example.test/cb", "hooks", id="label_ending_with_a_hyphen"),
        pytest.param("https://ex!ample.test/cb", "ex!ample", id="sub_delimiter_in_name"),
        pytest.param("https://%68ooks.example.test/cb", "%68ooks", id="percent_encoded_name"),
        pytest.param("https://xn--garbage.example.test/cb", "IDNA", id="invalid_a_label"),
        pytest.param("https://\u2603.example.test/cb", "IDNA", id="symbol_idna2008_refuses"),
        pytest.param("https://a\u200db.example.test/cb", "IDNA", id="joiner_out_of_context"),
        pytest.param("https://a\ud800.example.test/cb", "IDNA", id="lone_surrogate"),
        pytest.param("https://1.2.3.999/cb", "IPv4", id="ipv4_out_of_range"),
        pytest.param("https://1.2.3/cb", "IPv4", id="ipv4_with_three_parts"),
    ],
)
def test_callback_url_check_rejects_host_names_no_resolver_can_look_up(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        callback_url_check(url)


def test_callback_url_check_error_names_user_info() -> None:
    with pytest.raises(ValueError, match="user-info"):
        callback_url_check("https://user:secret@hooks.example.test/cb")


# --- callback_target_check --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        pytest.param("127.0.0.1", id="loopback_v4"),
        pytest.param("127.255.255.254", id="loopback_v4_end_of_range"),
        pytest.param("::1", id="loopback_v6"),
        pytest.param("10.0.0.1", id="private_10_8"),
        pytest.param("172.16.0.1", id="private_172_16_12_start"),
        pytest.param("172.31.255.254", id="private_172_16_12_end"),
        pytest.param("192.168.1.1", id="private_192_168_16"),
        pytest.param("169.254.169.254", id="link_local_cloud_metadata"),
        pytest.param("100.64.0.1", id="cgnat_start"),
        pytest.param("100.127.255.254", id="cgnat_end"),
        pytest.param("100.100.100.200", id="alibaba_metadata"),
        pytest.param("224.0.0.1", id="multicast_v4"),
        pytest.param("239.255.255.250", id="multicast_ssdp"),
        pytest.param("ff02::1", id="multicast_v6"),
        pytest.param("0.0.0.0", id="unspecified_v4"),  # noqa: S104 - a refused address, never bound
        pytest.param("::", id="unspecified_v6"),
        pytest.param("255.255.255.255", id="broadcast"),
        pytest.param("::ffff:127.0.0.1", id="ipv4_mapped_loopback"),
        pytest.param("::ffff:10.0.0.1", id="ipv4_mapped_private"),
        pytest.param("::ffff:169.254.169.254", id="ipv4_mapped_metadata"),
        pytest.param("fd00:ec2::254", id="aws_ipv6_metadata"),
        pytest.param("fc00::1", id="unique_local_fc00_7_start"),
        pytest.param("fdff:ffff::1", id="unique_local_fc00_7_end"),
        pytest.param("fe80::1", id="link_local_v6"),
        pytest.param("fe80::1%eth0", id="link_local_v6_with_scope"),
    ],
)
def test_callback_target_check_refuses_non_public_addresses(address: str) -> None:
    with pytest.raises(CallbackRefused) as refused:
        callback_target_check(f"https://{HOST}/cb", allow_private=False, resolver=StubResolver(address))

    assert str(ipaddress.ip_address(address.split("%", maxsplit=1)[0])) in str(refused.value)


@pytest.mark.parametrize(
    ("url", "addresses", "expected"),
    [
        pytest.param(
            f"https://{HOST}/cb", [PUBLIC_V4], CheckedTarget(PUBLIC_V4, HOST, 443), id="https_defaults_to_443"
        ),
        pytest.param(
            f"http://{HOST}/cb", [PUBLIC_V4], CheckedTarget(PUBLIC_V4, HOST, 80), id="http_defaults_to_80"
        ),
        pytest.param(
            f"https://{HOST}:8443/cb",
            [PUBLIC_V4],
            CheckedTarget(PUBLIC_V4, HOST, 8443),
            id="explicit_port_kept",
        ),
        pytest.param(
            f"https://{HOST}/cb", [PUBLIC_V6], CheckedTarget(PUBLIC_V6, HOST, 443), id="public_ipv6"
        ),
        pytest.param(
            "https://HOOKS.Example.TEST/cb",
            [PUBLIC_V4],
            CheckedTarget(PUBLIC_V4, HOST, 443),
            id="host_lowercased",
        ),
        pytest.param(
            f"https://{HOST}/cb",
            ["10.0.0.7", PUBLIC_V4],
            CheckedTarget(PUBLIC_V4, HOST, 443),
            id="private_then_public_connects_to_public",
        ),
        pytest.param(
            f"https://{HOST}/cb",
            ["127.0.0.1", "169.254.169.254", "::ffff:10.0.0.1", PUBLIC_V6],
            CheckedTarget(PUBLIC_V6, HOST, 443),
            id="only_the_public_one_of_many_is_chosen",
        ),
        pytest.param(
            f"https://{HOST}/cb",
            [PUBLIC_V4, "10.0.0.7"],
            CheckedTarget(PUBLIC_V4, HOST, 443),
            id="public_then_private_connects_to_public",
        ),
    ],
)
def test_callback_target_check_returns_the_checked_public_address(
    url: str, addresses: list[str], expected: CheckedTarget
) -> None:
    resolver = StubResolver(*addresses)

    assert callback_target_check(url, allow_private=False, resolver=resolver) == expected
    assert resolver.calls == [(expected.hostname, expected.port)]


@pytest.mark.parametrize(
    "address",
    [
        pytest.param("10.0.0.7", id="private"),
        pytest.param("127.0.0.1", id="loopback"),
        pytest.param("192.168.1.20", id="home_network"),
    ],
)
def test_allow_private_permits_private_addresses(address: str) -> None:
    target = callback_target_check(
        "http://receiver.local:9000/cb", allow_private=True, resolver=StubResolver(address)
    )

    assert target == CheckedTarget(address=address, hostname="receiver.local", port=9000)


@pytest.mark.parametrize(
    "allowed_hosts",
    [
        pytest.param(["receiver.internal"], id="same_case"),
        pytest.param(["RECEIVER.Internal"], id="different_case"),
        pytest.param(("other.internal", "receiver.internal"), id="one_of_several"),
    ],
)
def test_allowed_hosts_exempt_the_named_host(allowed_hosts: list[str] | tuple[str, ...]) -> None:
    target = callback_target_check(
        "https://Receiver.Internal/cb",
        allow_private=False,
        allowed_hosts=allowed_hosts,
        resolver=StubResolver("10.1.2.3"),
    )

    assert target == CheckedTarget(address="10.1.2.3", hostname="receiver.internal", port=443)


def test_allowed_hosts_do_not_exempt_other_hosts() -> None:
    with pytest.raises(CallbackRefused, match=r"10\.1\.2\.3"):
        callback_target_check(
            "https://attacker.example.test/cb",
            allow_private=False,
            allowed_hosts=["receiver.internal"],
            resolver=StubResolver("10.1.2.3"),
        )


def test_allowed_hosts_match_whole_names_not_suffixes() -> None:
    with pytest.raises(CallbackRefused):
        callback_target_check(
            "https://evil-receiver.internal/cb",
            allow_private=False,
            allowed_hosts=["receiver.internal"],
            resolver=StubResolver("10.1.2.3"),
        )


@pytest.mark.parametrize(
    "resolver",
    [
        pytest.param(failing_resolver, id="resolver_raises_oserror"),
        pytest.param(StubResolver(), id="resolver_returns_nothing"),
    ],
)
def test_unresolvable_host_is_refused(resolver: Resolver) -> None:
    with pytest.raises(CallbackRefused, match=r"cannot resolve hooks\.example\.test"):
        callback_target_check(f"https://{HOST}/cb", allow_private=True, resolver=resolver)
