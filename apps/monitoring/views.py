"""GET /metrics: the api's Prometheus text, for the networks in CHARGE_METRICS_ALLOWED_NETS only."""

from __future__ import annotations

import ipaddress
from functools import cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from apps.monitoring.exposition import process_registry, state_registry

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@cache
def _allowed_networks(nets: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(net, strict=False) for net in nets)


def scraper_allowed(remote_addr: str) -> bool:
    """True when the peer address is inside one of the allowed networks."""
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    networks = _allowed_networks(tuple(settings.CHARGE_METRICS_ALLOWED_NETS))
    return any(address.version == net.version and address in net for net in networks)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Every api process's metrics, merged, plus the pipeline state read now."""
    if not scraper_allowed(request.META.get("REMOTE_ADDR", "")):
        return JsonResponse({"detail": "metrics are served to the monitoring network only"}, status=403)
    body = generate_latest(process_registry()) + generate_latest(state_registry)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
