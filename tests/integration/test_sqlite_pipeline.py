"""The pipeline on `make run`'s default database, SQLite: batched decisions and callbacks work there too.

The real api server, bridge and workers, real Kafka and Redis; the database is a SQLite file of this test's
own (DATABASE_URL unset, CHARGE_LOCAL_DIR set), migrated and keyed with the operator's commands.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.integration.conftest import Pipeline
from tests.stack import manage_py

STATION = "ac0c6a0e-4b1e-4d55-9a7e-3c1f2b9d8e71"
TOKEN = "SQLITE-PIPELINE-TOKEN-01"


def _sqlite_env(pipeline: Pipeline, tmp_path: Path) -> dict[str, str]:
    env = {key: value for key, value in pipeline.env.items() if key != "DATABASE_URL"}
    env["CHARGE_LOCAL_DIR"] = str(tmp_path / "local")
    (tmp_path / "local").mkdir()  # as compose/local/run.sh does
    return env


def test_requests_are_decided_and_called_back_on_sqlite(pipeline: Pipeline, tmp_path: Path) -> None:
    env = _sqlite_env(pipeline, tmp_path)
    assert manage_py("migrate", "--noinput", env=env).returncode == 0
    created = manage_py("create_api_key", "--client", "sqlite", "--scopes", "charging:write",
                        "authorize", "acl:write", env=env)  # fmt: skip
    assert created.returncode == 0, created.stderr
    headers = {"Authorization": f"Bearer {created.stdout.strip()}"}
    # Every process on the SQLite file instead of the test's PostgreSQL.
    pipeline.env.clear()
    pipeline.env.update(env)
    api_url = pipeline.start_api()
    pipeline.start_bridge()
    pipeline.start_worker(queues="authorize", concurrency=2)
    pipeline.start_worker(queues="callbacks", pool="threads", concurrency=4)

    with httpx.Client(headers=headers, timeout=10) as http:
        inserted = http.post(f"{api_url}/insertACL/", json={"station_id": STATION, "driver_token": TOKEN})
        assert inserted.json() == {"flag": "success"}
        expected: dict[str, tuple[str, str]] = {}
        for n in range(40):
            token = TOKEN if n % 4 else "SQLITE-UNKNOWN-TOKEN-00"
            answer = http.post(
                f"{api_url}/chargingRequestValidator/",
                json={"station_id": STATION, "driver_token": token, "callback_url": pipeline.receiver.url()},
            ).json()
            assert answer["status"] == "accepted", answer
            expected[answer["request_id"]] = (
                ("allowed", "granted") if n % 4 else ("not_allowed", "unknown_token")
            )
        sync: dict[str, Any] = http.post(
            f"{api_url}/checkauthority/",
            json={"station_id": STATION, "driver_token": TOKEN, "callback_url": pipeline.receiver.url()},
        ).json()
        assert (sync["status"], sync["reason"]) == ("allowed", "granted")
        expected[sync["request_id"]] = ("allowed", "granted")

    for request_id, outcome in expected.items():
        [callback] = pipeline.receiver.wait_for(request_id)
        assert (callback.json["status"], callback.json["reason"]) == outcome
    assert Counter(r.headers["x-charge-request-id"] for r in pipeline.receiver.received) == Counter(
        dict.fromkeys(expected, 1)
    )
