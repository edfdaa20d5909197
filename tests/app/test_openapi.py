"""The OpenAPI document is the contract: it names every route and the bearer scheme that guards them."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client


@pytest.fixture
def document(client: Client) -> dict[str, Any]:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_the_document_lists_the_routes(document: dict[str, Any]) -> None:
    paths = document["paths"]

    for path in [
        "/api/v1/charging-requests",
        "/api/v1/charging-requests/{request_id}",
        "/api/v1/authorize",
        "/api/chargingRequestValidator/",
        "/api/checkauthority/",
        "/api/insertACL/",
        "/api/getrequestlog/",
        "/api/healthz",
    ]:
        assert path in paths, path
    assert "post" in paths["/api/v1/charging-requests"]
    assert "get" in paths["/api/v1/charging-requests"]


def test_the_document_declares_a_bearer_scheme(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]

    assert {"type": "http", "scheme": "bearer"} in schemes.values()


def test_every_route_but_health_requires_the_bearer_scheme(document: dict[str, Any]) -> None:
    bearer_names = {
        name
        for name, scheme in document["components"]["securitySchemes"].items()
        if scheme.get("scheme") == "bearer"
    }

    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            required = {name for entry in operation.get("security", []) for name in entry}
            if path in {"/api/healthz", "/api/readyz"}:  # probes for load balancers: no key
                assert not required, (method, path)
            else:
                assert required & bearer_names, (method, path)


def test_the_v1_create_documents_its_202_and_503(document: dict[str, Any]) -> None:
    responses = document["paths"]["/api/v1/charging-requests"]["post"]["responses"]

    assert {"202", "503"} <= set(responses)
