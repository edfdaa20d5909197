"""docs/callbacks.md's snippets are code receivers copy: run them against our own signatures."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

from apps.callbacks.signing import signature_compute, signature_header

DOC = Path(__file__).resolve().parents[2] / "docs" / "callbacks.md"
SECRET = "whsec-test-0123456789"
BODY = b'{"request_id":"0b4c5a4e","status":"allowed","message":"Access granted"}'


def _block(language: str) -> str:
    [code] = re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    return code


def _python_verify() -> Any:
    namespace: dict[str, Any] = {}
    exec(_block("python"), namespace)  # noqa: S102 - the documented snippet is the code under test
    return namespace["verify"]


def test_the_python_snippet_accepts_our_signature_and_refuses_forgeries() -> None:
    verify = _python_verify()
    now = int(time.time())
    header = signature_header(secrets=[SECRET], timestamp=now, body=BODY)

    assert verify(SECRET, header, BODY)
    assert not verify("another-secret", header, BODY)
    assert not verify(SECRET, header, BODY + b" ")
    stale = signature_header(secrets=[SECRET], timestamp=now - 3600, body=BODY)
    assert not verify(SECRET, stale, BODY)


def test_the_python_snippet_accepts_either_secret_during_a_rotation() -> None:
    verify = _python_verify()
    header = signature_header(secrets=["new-secret", "old-secret"], timestamp=int(time.time()), body=BODY)

    assert verify("new-secret", header, BODY)
    assert verify("old-secret", header, BODY)


def test_the_openssl_one_liner_computes_the_v1_value() -> None:
    timestamp = 1796250000
    env = dict(os.environ, T=str(timestamp), BODY=BODY.decode(), SECRET=SECRET)

    result = subprocess.run(
        ["bash", "-c", _block("sh")], env=env, capture_output=True, text=True, check=True, timeout=10
    )

    assert result.stdout.strip() == signature_compute(secret=SECRET, timestamp=timestamp, body=BODY)
