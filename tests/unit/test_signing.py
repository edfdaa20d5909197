"""X-Charge-Signature (DESIGN "Callbacks"): `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`."""

from __future__ import annotations

import hashlib
import hmac
import re

import pytest

from apps.callbacks.signing import signature_header, signature_verify

SECRET = "whsec_current_0123456789"
PREVIOUS_SECRET = "whsec_previous_9876543210"
BODY = b'{"request_id":"3b2f7a44-1c9d-4e8a-b6f1-0d2c4e6a8b9c","status":"allowed","message":"Access granted"}'
T = 1_748_779_200


def hmac_sha256_hex(secret: str, timestamp: int, body: bytes) -> str:
    """The receiver's computation, written from DESIGN, not from the code under test."""
    return hmac.new(
        secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + body, hashlib.sha256
    ).hexdigest()


def test_header_matches_an_independent_hmac_sha256() -> None:
    header = signature_header(secrets=[SECRET], timestamp=T, body=BODY)

    assert header == f"t={T},v1={hmac_sha256_hex(SECRET, T, BODY)}"
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)


def test_header_during_rotation_carries_one_v1_per_secret_in_order() -> None:
    header = signature_header(secrets=[SECRET, PREVIOUS_SECRET], timestamp=T, body=BODY)

    assert header.split(",") == [
        f"t={T}",
        f"v1={hmac_sha256_hex(SECRET, T, BODY)}",
        f"v1={hmac_sha256_hex(PREVIOUS_SECRET, T, BODY)}",
    ]


def test_header_changes_with_the_body_and_the_timestamp() -> None:
    header = signature_header(secrets=[SECRET], timestamp=T, body=BODY)

    assert signature_header(secrets=[SECRET], timestamp=T, body=BODY + b" ") != header
    assert (
        signature_header(secrets=[SECRET], timestamp=T + 1, body=BODY).split(",")[1] != header.split(",")[1]
    )


ONE_SECRET = signature_header(secrets=[SECRET], timestamp=T, body=BODY)
TWO_SECRETS = signature_header(secrets=[SECRET, PREVIOUS_SECRET], timestamp=T, body=BODY)


@pytest.mark.parametrize(
    ("header", "secret", "body", "now", "verified"),
    [
        pytest.param(ONE_SECRET, SECRET, BODY, T, True, id="right_secret_verifies"),
        pytest.param(ONE_SECRET, PREVIOUS_SECRET, BODY, T, False, id="wrong_secret_fails"),
        pytest.param(ONE_SECRET, "", BODY, T, False, id="empty_secret_fails"),
        pytest.param(
            ONE_SECRET, SECRET, BODY.replace(b"allowed", b"allowee"), T, False, id="tampered_body_fails"
        ),
        pytest.param(ONE_SECRET, SECRET, BODY + b"\n", T, False, id="body_with_extra_newline_fails"),
        pytest.param(ONE_SECRET, SECRET, BODY, T + 300, True, id="300s_late_is_within_tolerance"),
        pytest.param(ONE_SECRET, SECRET, BODY, T + 301, False, id="301s_late_is_outside_tolerance"),
        pytest.param(ONE_SECRET, SECRET, BODY, T - 300, True, id="300s_early_is_within_tolerance"),
        pytest.param(ONE_SECRET, SECRET, BODY, T - 301, False, id="301s_early_is_outside_tolerance"),
        pytest.param(TWO_SECRETS, SECRET, BODY, T, True, id="rotation_new_secret_verifies"),
        pytest.param(TWO_SECRETS, PREVIOUS_SECRET, BODY, T, True, id="rotation_previous_secret_verifies"),
        pytest.param(TWO_SECRETS, "whsec_someone_else", BODY, T, False, id="rotation_third_secret_fails"),
        pytest.param(
            ONE_SECRET.replace(f"t={T}", f"t={T + 60}"),
            SECRET,
            BODY,
            T + 60,
            False,
            id="replayed_with_new_t_fails",
        ),
        pytest.param(ONE_SECRET.split(",")[1], SECRET, BODY, T, False, id="missing_t_fails"),
        pytest.param(f"t={T}", SECRET, BODY, T, False, id="missing_v1_fails"),
        pytest.param(f"t={T},{ONE_SECRET}", SECRET, BODY, T, False, id="two_t_values_fail"),
        pytest.param(f"t=-{T},v1=00", SECRET, BODY, T, False, id="negative_t_fails"),
        pytest.param(f"t=abc,{ONE_SECRET.split(',')[1]}", SECRET, BODY, T, False, id="non_numeric_t_fails"),
        pytest.param("", SECRET, BODY, T, False, id="empty_header_fails"),
        pytest.param(
            f"t={T},v0={hmac_sha256_hex(SECRET, T, BODY)}", SECRET, BODY, T, False, id="other_scheme_ignored"
        ),
    ],
)
def test_signature_verify(header: str, secret: str, body: bytes, now: int, verified: bool) -> None:
    assert signature_verify(header=header, secret=secret, body=body, now=now) is verified


def test_signature_verify_uses_the_given_tolerance() -> None:
    assert signature_verify(header=ONE_SECRET, secret=SECRET, body=BODY, now=T + 30, tolerance_s=30)
    assert not signature_verify(header=ONE_SECRET, secret=SECRET, body=BODY, now=T + 31, tolerance_s=30)


def test_header_built_independently_verifies() -> None:
    header = f"t={T},v1={hmac_sha256_hex(SECRET, T, BODY)}"

    assert signature_verify(header=header, secret=SECRET, body=BODY, now=T)


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("t=\u00b2,v1=00", id="superscript_digit_t"),
        pytest.param(f"t={T},v1=\u00e9", id="non_ascii_v1"),
    ],
)
def test_signature_verify_returns_false_for_any_malformed_header(header: str) -> None:
    assert signature_verify(header=header, secret=SECRET, body=BODY, now=T) is False
