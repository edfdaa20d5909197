"""How long one authorization decision takes when the ACL is large (issue 5, item 7).

Fills the ACL tables of an empty, migrated PostgreSQL database with COPY (stations, token groups,
driver tokens, grants), then times `apps.access.services.authorization_decide` for random existing
tokens, and EXPLAIN ANALYZEs the decision's queries to show they read only index entries they need.
Writes benchmarks/results/acl-scale-<size>.json.

    .venv/bin/python benchmarks/acl_scale.py --database-url postgres://postgres@127.0.0.1:15499/charge \\
        --tokens 100000 --grants 1000000

It refuses a database whose ACL already has rows unless --reset is given (then it empties the ACL
tables first), and empties them again at the end unless --keep is given. Point it at a throwaway
database: never at one whose ACL you need.
"""

# Django and the apps are imported inside functions: only after --database-url is in the environment.
# ruff: noqa: PLC0415

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ACL_TABLES = "access_grant, access_drivertoken, access_tokengroup, access_station"
PROGRESS_EVERY = 100_000

# Shape of the generated ACL: fractions of tokens, stations and grants.
GROUPED_TOKENS = 0.5  # tokens in a fleet group
BLOCKED_TOKENS = 0.02
EXPIRED_TOKENS = 0.01
DISABLED_STATIONS = 0.02
GROUP_GRANTS = 0.05  # grants held by a group, not a token
ALL_STATIONS_GRANTS = 0.01
REVOKED_GRANTS = 0.05
WINDOWED_GRANTS = 0.10  # grants with a validity window, past, current or future


def _setup_django(database_url: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    os.environ.setdefault("SECRET_KEY", "acl-scale-benchmark")
    os.environ["DEBUG"] = "0"  # DEBUG would keep every query in memory
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _station_id(number: int) -> str:
    return str(uuid.UUID(int=(0xBE4C << 112) | number))


def _token_value(number: int) -> str:
    return f"bench-token-{number:012d}"


def _say(message: str) -> None:
    print(message, flush=True)


def _copy(table: str, columns: Sequence[str], rows: Iterator[tuple[Any, ...]], total: int) -> float:
    """COPY rows into table, with a progress line every PROGRESS_EVERY rows; the seconds it took."""
    from django.db import connection

    connection.ensure_connection()
    raw: Any = connection.connection
    started = time.perf_counter()
    sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with raw.cursor() as cursor, cursor.copy(sql) as copy:
        for index, row in enumerate(rows, 1):
            copy.write_row(row)
            if index % PROGRESS_EVERY == 0 or index == total:
                rate = index / max(time.perf_counter() - started, 1e-9)
                _say(f"  {table}: {index:,}/{total:,} rows ({rate:,.0f}/s)")
    raw.commit()
    return time.perf_counter() - started


def _ids(table: str) -> list[int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {table} ORDER BY id")  # noqa: S608 - a constant table name
        return [row[0] for row in cursor.fetchall()]


def _fill(*, tokens: int, grants: int, stations: int, groups: int, rng: random.Random) -> dict[str, Any]:
    now = datetime.now(UTC)
    seconds: dict[str, float] = {}

    seconds["stations"] = _copy(
        "access_station",
        ["station_id", "name", "location", "enabled", "created_at", "updated_at"],
        (
            (_station_id(n), f"Station {n}", f"Site {n // 10}", rng.random() >= DISABLED_STATIONS, now, now)
            for n in range(stations)
        ),
        stations,
    )
    seconds["groups"] = _copy(
        "access_tokengroup",
        ["name", "note", "created_at"],
        ((f"fleet-{n:06d}", "", now) for n in range(groups)),
        groups,
    )
    group_ids = _ids("access_tokengroup")

    def token_rows() -> Iterator[tuple[Any, ...]]:
        for n in range(tokens):
            roll = rng.random()
            status = "blocked" if roll < BLOCKED_TOKENS else "active"
            expired = BLOCKED_TOKENS <= roll < BLOCKED_TOKENS + EXPIRED_TOKENS
            valid_until = now - timedelta(days=1) if expired else None
            group = rng.choice(group_ids) if group_ids and rng.random() < GROUPED_TOKENS else None
            yield (_token_value(n), "rfid", status, valid_until, group, "", now, now)

    seconds["tokens"] = _copy(
        "access_drivertoken",
        ["value", "type", "status", "valid_until", "group_id", "note", "created_at", "updated_at"],
        token_rows(),
        tokens,
    )
    token_ids = _ids("access_drivertoken")

    def grant_rows() -> Iterator[tuple[Any, ...]]:
        for _ in range(grants):
            roll = rng.random()
            if group_ids and roll < GROUP_GRANTS:
                token_id, group_id = None, rng.choice(group_ids)
            else:
                token_id, group_id = rng.choice(token_ids), None
            station = None if rng.random() < ALL_STATIONS_GRANTS else _station_id(rng.randrange(stations))
            valid_from = valid_until = None
            if rng.random() < WINDOWED_GRANTS:
                start = now + timedelta(days=rng.randint(-60, 30))
                valid_from, valid_until = start, start + timedelta(days=rng.randint(1, 60))
            revoked_at = now - timedelta(days=1) if rng.random() < REVOKED_GRANTS else None
            yield (token_id, group_id, station, valid_from, valid_until, revoked_at, "", now)

    seconds["grants"] = _copy(
        "access_grant",
        [
            "token_id",
            "group_id",
            "station_id",
            "valid_from",
            "valid_until",
            "revoked_at",
            "note",
            "created_at",
        ],
        grant_rows(),
        grants,
    )
    started = time.perf_counter()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {ACL_TABLES}")
    seconds["analyze"] = time.perf_counter() - started
    _say(f"  analyzed in {seconds['analyze']:.1f} s")
    return seconds


def _plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [plan, *(node for child in plan.get("Plans", []) for node in _plan_nodes(child))]


def _explain(*, station_id: str, driver_token: str) -> list[dict[str, Any]]:
    """EXPLAIN ANALYZE of each query one decision runs, reduced to its scans."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.access.selectors import authorization_facts_get

    with CaptureQueriesContext(connection) as captured:
        authorization_facts_get(station_id=station_id, driver_token=driver_token)
    explained = []
    with connection.cursor() as cursor:
        for query in captured.captured_queries:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {query['sql']}")
            result = cursor.fetchone()[0][0]
            scans = [
                {
                    "node": node["Node Type"],
                    "table": node.get("Relation Name"),
                    "index": node.get("Index Name"),
                    "index_cond": node.get("Index Cond"),
                    "rows": node.get("Actual Rows"),
                }
                for node in _plan_nodes(result["Plan"])
                if "Scan" in node["Node Type"]
            ]
            explained.append({"sql": query["sql"], "execution_ms": result["Execution Time"], "scans": scans})
    return explained


def _time_decisions(*, count: int, tokens: int, stations: int, rng: random.Random) -> dict[str, Any]:
    from django.db import connection
    from django.utils import timezone

    from apps.access.services import authorization_decide

    # Half the requests at a station the token holds a grant for, so `allowed` is exercised too.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.value, g.station_id FROM access_grant g JOIN access_drivertoken t ON t.id = g.token_id"
            " WHERE g.station_id IS NOT NULL ORDER BY random() LIMIT %s",
            [count],
        )
        granted_pairs = cursor.fetchall()

    def pick() -> tuple[str, str]:
        if granted_pairs and rng.random() < 0.5:
            value, station_id = rng.choice(granted_pairs)
            return station_id, value
        return _station_id(rng.randrange(stations)), _token_value(rng.randrange(tokens))

    for _ in range(min(200, count)):  # warm the connection and the buffer cache
        station_id, value = pick()
        authorization_decide(station_id=station_id, driver_token=value, at=timezone.now())
    durations_us: list[float] = []
    reasons: Counter[str] = Counter()
    for _ in range(count):
        station_id, value = pick()
        started = time.perf_counter_ns()
        decision = authorization_decide(station_id=station_id, driver_token=value, at=timezone.now())
        durations_us.append((time.perf_counter_ns() - started) / 1000)
        reasons[decision.reason.value] += 1
    durations_us.sort()

    def quantile(q: float) -> float:
        return round(durations_us[min(len(durations_us) - 1, int(q * len(durations_us)))], 1)

    return {
        "decisions": count,
        "p50_us": quantile(0.50),
        "p90_us": quantile(0.90),
        "p99_us": quantile(0.99),
        "mean_us": round(statistics.fmean(durations_us), 1),
        "max_us": round(durations_us[-1], 1),
        "decisions_per_s": round(1_000_000 / statistics.fmean(durations_us)),
        "reasons": dict(reasons.most_common()),
    }


def _size_label(tokens: int) -> str:
    for unit, suffix in ((1_000_000, "m"), (1_000, "k")):
        if tokens >= unit and tokens % unit == 0:
            return f"{tokens // unit}{suffix}"
    return str(tokens)


def _acl_rows() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM access_grant) + (SELECT count(*) FROM access_drivertoken)"
            " + (SELECT count(*) FROM access_tokengroup) + (SELECT count(*) FROM access_station)"
        )
        return int(cursor.fetchone()[0])


def _truncate() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {ACL_TABLES} RESTART IDENTITY CASCADE")


def _environment() -> dict[str, Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        server = cursor.fetchone()[0]
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = bool(
        subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
    )
    return {
        "machine": platform.node(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),  # other work on the machine skews the timings
        "python": platform.python_version(),
        "postgresql": server,
        "commit": commit,
        "working_tree_dirty": dirty,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), required=False)
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--grants", type=int, default=10_000)
    parser.add_argument("--stations", type=int, help="default: a fifth of the tokens, at least 100")
    parser.add_argument("--groups", type=int, help="default: one per 100 tokens, at least 1")
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--output", type=Path, help="default: benchmarks/results/acl-scale-<size>.json")
    parser.add_argument("--reset", action="store_true", help="empty the ACL tables first if they have rows")
    parser.add_argument("--keep", action="store_true", help="leave the generated ACL in the database")
    args = parser.parse_args(argv)
    if not args.database_url or not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("--database-url (or DATABASE_URL) must be a postgres:// URL: the benchmark uses COPY")
    stations = args.stations or max(100, args.tokens // 5)
    groups = args.groups or max(1, args.tokens // 100)
    label = _size_label(args.tokens)
    output = args.output or ROOT / "benchmarks" / "results" / f"acl-scale-{label}.json"
    rng = random.Random(args.seed)

    _setup_django(args.database_url)
    existing = _acl_rows()
    if existing and not args.reset:
        _say(f"the ACL of this database has {existing:,} rows; pass --reset to empty it first")
        return 2
    if existing:
        _truncate()
    _say(f"filling {stations:,} stations, {groups:,} groups, {args.tokens:,} tokens, {args.grants:,} grants")
    try:
        started = time.perf_counter()
        fill_seconds = _fill(
            tokens=args.tokens, grants=args.grants, stations=stations, groups=groups, rng=rng
        )
        fill_total = time.perf_counter() - started
        _say(f"filled in {fill_total:.1f} s; timing {args.decisions:,} decisions")
        timing = _time_decisions(count=args.decisions, tokens=args.tokens, stations=stations, rng=rng)
        # The plan for a grouped token (its own grants and its group's both probed) at a granted station.
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT t.value, g.station_id FROM access_drivertoken t"
                " JOIN access_grant g ON g.token_id = t.id WHERE t.group_id IS NOT NULL"
                " AND g.station_id IS NOT NULL AND g.revoked_at IS NULL LIMIT 1"
            )
            sample_token, sample_station = cursor.fetchone()
        plans = _explain(station_id=sample_station, driver_token=sample_token)
        # Tiny tables (the 1k size's 200 stations) may be read whole: that is the planner's cheaper choice.
        seq_scans = [scan for plan in plans for scan in plan["scans"] if scan["node"] == "Seq Scan"]
        result = {
            "benchmark": "acl_scale",
            "command": " ".join([".venv/bin/python", "benchmarks/acl_scale.py", *(argv or sys.argv[1:])]),
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "environment": _environment(),
            "size": {"tokens": args.tokens, "grants": args.grants, "stations": stations, "groups": groups},
            "fill_seconds": {key: round(value, 1) for key, value in fill_seconds.items()}
            | {"total": round(fill_total, 1)},
            "decision": timing,
            "explain": {
                "driver_token": sample_token,
                "station_id": sample_station,
                "sequential_scans": [scan["table"] for scan in seq_scans],
                "queries": plans,
            },
        }
    finally:
        if not args.keep:
            _truncate()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    _say(
        f"{label}: p50 {timing['p50_us']:.0f} µs, p99 {timing['p99_us']:.0f} µs,"
        f" mean {timing['mean_us']:.0f} µs per decision;"
        f" sequential scans: {[scan['table'] for scan in seq_scans] or 'none'}; wrote {output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
