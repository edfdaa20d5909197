"""The accept route's status_url: built from a per-(scheme, Host) cache, the same as Django's."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.core.exceptions import DisallowedHost
from django.test import RequestFactory

from apps.api.v1 import charging


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    charging._SITES.clear()


@pytest.mark.parametrize(
    ("headers", "secure"),
    [
        ({"HTTP_HOST": "127.0.0.1:8000"}, False),
        ({"HTTP_HOST": "localhost"}, False),
        ({"HTTP_HOST": "[::1]:8443", "HTTP_X_FORWARDED_PROTO": "https"}, True),
        ({"HTTP_HOST": "[::1]:8443", "HTTP_X_FORWARDED_PROTO": "http"}, True),
        ({}, False),  # no Host: SERVER_NAME and SERVER_PORT, as Django does
    ],
)
def test_the_same_url_as_django_builds(headers: dict[str, str], secure: bool, settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]
    if secure:
        settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    path = f"/api/v1/charging-requests/{uuid.uuid4()}"
    for _ in range(2):  # built once, then from the cache
        request = RequestFactory().get("/api/v1/charging-requests")
        request.META.update(headers)
        assert charging._site_of(request) + path == request.build_absolute_uri(path)


def test_one_entry_per_scheme_and_host(settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["a.example", "b.example"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    sites = {
        charging._site_of(RequestFactory().get("/", HTTP_HOST=host, HTTP_X_FORWARDED_PROTO=proto))
        for host in ("a.example", "b.example")
        for proto in ("http", "https")
    }
    assert sites == {"http://a.example", "https://a.example", "http://b.example", "https://b.example"}


def test_a_host_not_allowed_is_refused_and_not_kept(settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["a.example"]
    with pytest.raises(DisallowedHost):
        charging._site_of(RequestFactory().get("/", HTTP_HOST="evil.example"))
    assert charging._SITES == {}


def test_hosts_a_caller_picks_do_not_grow_it_without_bound(settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["*"]
    for n in range(3 * charging._SITES_MAX):
        host = f"host-{n}.example"
        assert charging._site_of(RequestFactory().get("/", HTTP_HOST=host)) == f"http://{host}"
        assert len(charging._SITES) <= charging._SITES_MAX
