"""`make bench`: start the application processes, drive the phases, check every request, report.

compose/local/bench.sh starts Kafka, Redis and PostgreSQL in a temporary folder and calls this with
their addresses in KAFKA_BOOTSTRAP_SERVERS, REDIS_URL and DATABASE_URL; the integration test calls it
the same way with the test fixtures' services. This module then starts, each in its own process
group and with the project's own start scripts, the api (compose/local/api.sh: granian), the bridge
(bridge.sh), the authorize worker (worker.sh, prefork), the callbacks worker (worker.sh, threads),
beat, Flower and the OCPP gateway (ocpp.sh), plus a callback receiver (benchmarks/receiver.py), and
stops all of them at the end, whatever happened.

Phases (BENCH_PHASES, default all, in this order):
  burst          a) accept burst: N requests as fast as the API takes them (closed loop, C connections)
  accept         a) accept latency at a fixed offered rate (open loop; DESIGN: p99 <= 25 ms at 400/s)
  ladder         b) offered 50, 100, 200, 300... requests/s for S s each until the pipeline falls
                 behind; per step CPU per decision by process and the mean batch sizes
  sync_callback  c) POST /api/checkauthority/ with a callback_url, closed loop
  sync           c) POST /api/v1/authorize without a callback, closed loop
  ocpp           e) stations on the OCPP gateway, each sending Authorize 2/s; round-trip p50/p99,
                 then the gateway restarted (SIGTERM, a new one) and each station's reconnect timed
  floors         the bounds of those figures on this machine (benchmarks/floors.py), with the stack
                 stopped: a no-op Celery task, a bare Kafka round trip, a no-op and a produce-only
                 route on the api's server settings
Resource use is sampled all along. After each phase every accepted request is checked: one decision
row, one callback delivery (delivered), one callback at the receiver.

Databases (BENCH_DB): postgres (DATABASE_URL), sqlite (`make run`'s default: DATABASE_URL unset, a
file under CHARGE_LOCAL_DIR), or both (full scale's default): the PostgreSQL pass, then a second,
shorter pass on SQLite (BENCH_SQLITE_PHASES, ladder steps of BENCH_SQLITE_STEP_S) by a child run of
this module, whose report lands beside this one and inside it ("sqlite").

Scale (BENCH_SCALE): tiny (seconds per phase, for `make test`) or full (the measured run). Each knob
can be overridden from the environment; see benchmarks/config.py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.config import FLOORS, PHASES, REPO, RESULTS, SCALES, say, scale_from_env
from benchmarks.document import consistency_passed, document_build, git
from benchmarks.passes import FloorsAlongside, Run, floors_run, sqlite_pass, stack_pass
from benchmarks.profiling import Profiler
from benchmarks.stack import Stack, django_setup, stack_env

# --- main --------------------------------------------------------------------------------------------


class Interrupted(Exception):
    pass


def _raise_interrupted(signum: int, frame: object) -> None:
    # Once: a second signal (Ctrl-C reaches bench.sh and us, then bench.sh sends TERM) must not cut
    # the cleanup short.
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM):
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signal.Signals(signum).name)


@contextlib.contextmanager
def _signals(max_run_s: float) -> Iterator[None]:
    """SIGTERM/SIGINT and the run's own time limit (SIGALRM) all end in the cleanup below."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM)}
    for sig in previous:
        signal.signal(sig, _raise_interrupted)
    signal.alarm(int(max_run_s) + 1)
    try:
        yield
    finally:
        signal.alarm(0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", choices=sorted(SCALES), default=os.environ.get("BENCH_SCALE", "full"))
    parser.add_argument("--out", type=Path, default=None, help="folder for the JSON and PNG (BENCH_OUT)")
    parser.add_argument("--phases", default=os.environ.get("BENCH_PHASES", ",".join(PHASES)))
    parser.add_argument(
        "--floors", default=os.environ.get("BENCH_FLOORS", ",".join(FLOORS)), help="which floors to measure"
    )
    parser.add_argument(
        "--work", type=Path, default=None, help="logs and data of the run (default: a temp dir)"
    )
    parser.add_argument("--redis-db", type=int, default=None, help="use this Redis database number")
    parser.add_argument("--no-flower", action="store_true", default=os.environ.get("BENCH_FLOWER") == "0")
    parser.add_argument("--command", default=os.environ.get("BENCH_COMMAND", "make bench"))
    # Set by a run for its SQLite pass: the report's file name and what is left of the time budget.
    parser.add_argument("--stem", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--max-s", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.phase_list = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(args.phase_list) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases {sorted(unknown)}; choose from {PHASES}")
    args.floor_list = [f.strip() for f in args.floors.split(",") if f.strip()]
    if set(args.floor_list) - set(FLOORS):
        parser.error(f"unknown floors {sorted(set(args.floor_list) - set(FLOORS))}; choose from {FLOORS}")
    return args


def _prepare(args: argparse.Namespace) -> tuple[Run, Stack]:
    """The run's scale, output, work folder and stack environment; Django set up on its database."""
    scale, knobs = scale_from_env(args.scale)
    if args.max_s is not None:
        scale = replace(scale, max_run_s=args.max_s)
    out_dir = args.out or Path(
        os.environ.get("BENCH_OUT") or (RESULTS if scale.name == "full" else REPO / ".local" / "bench")
    )
    base_command = " ".join([*(f"{k}={shlex.quote(v)}" for k, v in knobs.items()), args.command])
    work = args.work or Path(tempfile.mkdtemp(prefix="charge-bench-run-"))
    work.mkdir(parents=True, exist_ok=True)
    database = "sqlite" if scale.database == "sqlite" else "postgres"
    env = stack_env(work, redis_db=args.redis_db, database=database)
    django_setup(env)
    started_at = datetime.now(UTC)
    stem = args.stem or report.stem(
        started_at=started_at, sha=git("rev-parse", "HEAD"), scale=scale.name, database=database
    )
    run = Run(
        args=args,
        scale=scale,
        base_command=base_command,
        out_dir=out_dir,
        stem=stem,
        work=work,
        env=env,
        profiler=Profiler.from_env(out_dir / "profiles", stamp=started_at.strftime("%Y%m%d-%H%M%S")),
        started_at=started_at,
    )
    return run, Stack(work=work, env=env, api_port=int(env["API_PORT"]))


def _execute(run: Run, stack: Stack) -> tuple[dict[str, Any], dict[str, Any] | None, str | None]:
    """The stack's phases, the floors, the SQLite pass: (results, the SQLite pass, what failed)."""
    results: dict[str, Any] = {}
    sqlite: dict[str, Any] | None = None
    alongside: FloorsAlongside | None = None
    failed: str | None = None
    try:
        with _signals(run.scale.max_run_s):
            if run.floors_wanted and run.scale.floors_during_startup and run.stack_phases:
                alongside = FloorsAlongside(run)
                alongside.start()
            if run.stack_phases:
                results = stack_pass(run, stack)
            if alongside is not None:
                results["floors"] = alongside.result_get()
            elif run.floors_wanted:
                results["floors"] = floors_run(run)
            if run.scale.database == "both":
                sqlite = sqlite_pass(run)
    except (Interrupted, KeyboardInterrupt) as exc:
        failed = f"interrupted ({exc})"
    except Exception as exc:
        failed = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if alongside is not None and alongside.is_alive():
            say("bench: waiting for the floors to stop what they started")
            alongside.join(timeout=300)
    return results, sqlite, failed


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    run, stack = _prepare(args)
    scale = run.scale
    load_before = os.getloadavg()
    say(
        f"bench: scale {scale.name}, database {stack.database}"
        f"{' then sqlite' if scale.database == 'both' else ''}, phases {','.join(args.phase_list)}, "
        f"load average {load_before[0]:.2f} on {os.cpu_count()} cores, work dir {run.work}"
    )
    if load_before[0] > 1.5 and scale.name == "full":
        say("bench: WARNING the machine is busy (load > 1.5): figures will be lower than on a quiet one")
    results, sqlite, failed = _execute(run, stack)
    document = document_build(
        scale=scale,
        env=run.env,
        results=results,
        started_at=run.started_at,
        run_started=run.started,
        load_before=load_before,
        base_command=run.base_command,
        profiler=run.profiler,
        failed=failed,
    )
    if sqlite is not None:
        document["sqlite"] = sqlite
        document["consistency_passed"] = consistency_passed(results) and bool(sqlite["consistency_passed"])
    document["targets"] = report.targets(document)
    paths = report.write(document, run.out_dir, stem=run.stem)
    say(f"bench: report {paths['json']}")
    say(f"bench: plot   {paths['png']}")
    say("")
    say(report.markdown_table(document))
    if failed:
        return 1
    if not run.stack_phases:
        return 0
    return 0 if document["consistency_passed"] else 3


if __name__ == "__main__":
    sys.exit(main())
