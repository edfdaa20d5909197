"""Schemathesis against /api/openapi.json: no input gets a 5xx, every documented answer fits its schema.

Runs against the real app in-process, with the real broker and Redis behind it, a bounded number of
examples per operation.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import content_type_conformance, not_a_server_error, response_schema_conformance

from apps.charging.topics import topics_ensure
from apps.clients.services import ALL_SCOPES, api_client_get_or_create, api_key_create
from project.wsgi import application


@pytest.fixture
def fuzz_headers(services: dict[str, str], transactional_db: None) -> dict[str, str]:
    topics_ensure(wait_s=30)
    client = api_client_get_or_create(name="fuzzer")
    client.rate_limit_per_s = 100_000  # the fuzzer is not what rate limits are for
    client.save()
    _, key = api_key_create(client=client, scopes=ALL_SCOPES)
    return {"Authorization": f"Bearer {key}"}


# Loading the document needs no database or broker: it is read from the app at collection time.
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", application)


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_input_gets_a_server_error_and_answers_fit_the_schema(
    case: Any, fuzz_headers: dict[str, str]
) -> None:
    case.call_and_validate(
        headers=fuzz_headers,
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
    )
