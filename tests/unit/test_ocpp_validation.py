"""The `ocpp` package's schema checks with the compiled validator in front (apps/ocpp/validation.py):
the same verdicts and the same CALLERROR kinds as the package alone, and the compiled one really used."""

from __future__ import annotations

from typing import Any

import pytest
from ocpp import messages
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallResult, MessageType

from apps.ocpp import validation

LONG = "x" * 40
# (version, action, payload of the station's call); valid and invalid ones of the calls we answer.
CALLS: list[tuple[str, str, dict[str, Any]]] = [
    ("1.6", "Authorize", {"idTag": "04A2B3C4"}),
    ("1.6", "Authorize", {"idTag": LONG}),  # longer than 1.6's 20
    ("1.6", "Authorize", {"idTag": 12345678}),
    ("1.6", "Authorize", {}),
    ("1.6", "Authorize", {"idTag": "04A2B3C4", "extra": 1}),
    ("1.6", "BootNotification", {"chargePointVendor": "EVB", "chargePointModel": "P2023"}),
    ("1.6", "BootNotification", {"chargePointVendor": "EVB"}),
    ("1.6", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available"}),
    ("1.6", "StatusNotification", {"connectorId": 1.0, "errorCode": "NoError", "status": "Available"}),
    ("1.6", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Sleeping"}),
    (
        "1.6",
        "StartTransaction",
        {"connectorId": 1, "idTag": "04A2B3C4", "meterStart": 0, "timestamp": "2026-12-04T10:00:00Z"},
    ),
    (
        "1.6",
        "StartTransaction",
        {"connectorId": True, "idTag": "04A2B3C4", "meterStart": 0, "timestamp": "x"},
    ),
    ("2.0.1", "Authorize", {"idToken": {"idToken": "04A2B3C4", "type": "ISO14443"}}),
    ("2.0.1", "Authorize", {"idToken": {"idToken": "04A2B3C4", "type": "Magnetic"}}),
    ("2.0.1", "Authorize", {"idToken": {"idToken": "y" * 37, "type": "ISO14443"}}),
    ("2.0.1", "Authorize", {"idToken": {"type": "ISO14443"}}),
    ("2.0.1", "Heartbeat", {}),
    (
        "2.0.1",
        "BootNotification",
        {"chargingStation": {"model": "M", "vendorName": "V"}, "reason": "PowerUp"},
    ),
    ("2.0.1", "BootNotification", {"chargingStation": {"model": "M"}, "reason": "PowerUp"}),
    (
        "2.0.1",
        "TransactionEvent",
        {
            "eventType": "Started",
            "timestamp": "2026-12-04T10:00:00Z",
            "triggerReason": "Authorized",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "tx-1"},
        },
    ),
    (
        "2.0.1",
        "TransactionEvent",
        {"eventType": "Begun", "timestamp": "t", "triggerReason": "Authorized", "seqNo": -1.5},
    ),
]
# Our answers, as the gateway sends them.
RESULTS: list[tuple[str, str, dict[str, Any]]] = [
    ("1.6", "Authorize", {"idTagInfo": {"status": "Accepted", "expiryDate": "2026-12-31T00:00:00Z"}}),
    ("1.6", "Authorize", {"idTagInfo": {"status": "NotAStatus"}}),
    ("2.0.1", "Authorize", {"idTokenInfo": {"status": "NotAtThisLocation"}}),
    ("2.0.1", "Authorize", {"idTokenInfo": {}}),
]


def _verdict(validate: Any, payload: dict[str, Any]) -> str | None:
    """None if valid, else the jsonschema keyword the package maps its CALLERROR from."""
    try:
        validate(payload)
    except Exception as error:  # noqa: BLE001 - the kind is what is compared
        return f"{type(error).__name__}:{getattr(error, 'validator', '')}"
    return None


@pytest.mark.parametrize(("version", "action", "payload"), CALLS + RESULTS)
def test_the_fronted_validator_gives_the_packages_verdict(
    version: str, action: str, payload: dict[str, Any]
) -> None:
    kind = MessageType.Call if (version, action, payload) in CALLS else MessageType.CallResult
    plain = validation._package_get_validator(kind, action, version)
    fronted = validation.get_validator(kind, action, version)
    assert isinstance(fronted, validation.FastAccept)
    assert _verdict(fronted.validate, payload) == _verdict(plain.validate, payload)


def test_a_valid_payload_never_reaches_the_python_validator() -> None:
    fronted = validation.get_validator(MessageType.Call, "Authorize", "2.0.1")
    assert isinstance(fronted, validation.FastAccept)
    calls: list[Any] = []
    explaining = fronted.explaining
    fronted.explaining = type("Spy", (), {"validate": lambda _self, p: calls.append(p)})()
    try:
        fronted.validate({"idToken": {"idToken": "04A2B3C4", "type": "ISO14443"}})
        assert calls == []
        fronted.validate({"idToken": {"idToken": "04A2B3C4", "type": "Magnetic"}})
        assert len(calls) == 1  # refused by the compiled one: the package's own says why
    finally:
        fronted.explaining = explaining


def _package_error(version: str, message: Call | CallResult) -> str | None:
    try:
        messages._validate_payload(message, version)
    except OCPPError as error:
        return type(error).__name__
    return None


@pytest.mark.parametrize(("version", "action", "payload"), CALLS)
def test_installed_the_package_answers_with_the_same_callerror(
    version: str, action: str, payload: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(messages, "get_validator", validation._package_get_validator)
    before = _package_error(version, Call("1", action, dict(payload)))
    validation.install()
    assert messages.get_validator is validation.get_validator
    assert _package_error(version, Call("1", action, dict(payload))) == before


def test_decimal_schemas_keep_the_packages_validator() -> None:
    # 1.6 charging profiles are read with Decimal floats (multipleOf 0.1): the compiled one cannot.
    plain = validation.get_validator(
        MessageType.Call, "SetChargingProfile", "1.6", parse_float=__import__("decimal").Decimal
    )
    assert not isinstance(plain, validation.FastAccept)
