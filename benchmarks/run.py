"""`make bench`: start the application processes, drive the phases, check every request, report.

compose/local/bench.sh starts Kafka, Redis and PostgreSQL in a temporary folder and calls this with
their addresses in KAFKA_BOOTSTRAP_SERVERS, REDIS_URL and DATABASE_URL; the integration test calls it
the same way with the test fixtures' services. This module then starts, each in its own process
group and with the project's own start scripts, the api (compose/local/api.sh: gunicorn), the bridge
(bridge.sh), the authorize worker (worker.sh, prefork), the callbacks worker (worker.sh, threads),
beat and Flower, plus a callback receiver (benchmarks/receiver.py), and stops all of them at the end,
whatever happened.

Phases (BENCH_PHASES, default all, in this order):
  burst    a) accept burst: N requests as fast as the API takes them (closed loop, C connections)
  accept   a) accept latency at a fixed offered rate (open loop; DESIGN: p99 <= 25 ms at 400/s)
  ladder   b) offered 100, 200, 300... requests/s for S s each until the pipeline falls behind
  sync     c) POST /api/v1/authorize, closed loop
Resource use (d) is sampled all along. After each phase every accepted request is checked: one
decision row, one callback delivery (delivered), one callback at the receiver.

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
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.config import PHASES, REPO, RESULTS, SCALES, Scale, say, scale_from_env
from benchmarks.context import Arrivals, PhaseContext
from benchmarks.document import document_build, resources_summary
from benchmarks.ladder import phase_ladder
from benchmarks.phases import idle_measure, phase_accept, phase_burst, phase_sync, settle, warmup
from benchmarks.processes import GroupSampler
from benchmarks.profiling import Profiler
from benchmarks.stack import (
    Stack,
    django_setup,
    seed,
    service_groups,
    stack_env,
    start_receiver,
    start_stack,
    wait_ready,
)

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


def bring_up(stack: Stack, scale: Scale, *, flower: bool) -> list[tuple[str, str]]:
    """Seed the database, start the receiver and every process of the stack, wait until all answer."""
    pairs = seed(stack, scale)
    start_receiver(stack)
    start_stack(stack, flower=flower)
    # Generous: on a busy 2-core machine each manage.py in api.sh alone can take 20 s.
    wait_ready(stack, timeout=240)
    return pairs


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", choices=sorted(SCALES), default=os.environ.get("BENCH_SCALE", "full"))
    parser.add_argument("--out", type=Path, default=None, help="folder for the JSON and PNG (BENCH_OUT)")
    parser.add_argument("--phases", default=os.environ.get("BENCH_PHASES", ",".join(PHASES)))
    parser.add_argument(
        "--work", type=Path, default=None, help="logs and data of the run (default: a temp dir)"
    )
    parser.add_argument("--redis-db", type=int, default=None, help="use this Redis database number")
    parser.add_argument("--no-flower", action="store_true", default=os.environ.get("BENCH_FLOWER") == "0")
    parser.add_argument("--command", default=os.environ.get("BENCH_COMMAND", "make bench"))
    args = parser.parse_args(argv)
    args.phase_list = [p.strip() for p in args.phases.split(",") if p.strip()]
    unknown = set(args.phase_list) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases {sorted(unknown)}; choose from {PHASES}")
    return args


def _run_phases(ctx: PhaseContext, phases: Sequence[str]) -> dict[str, Any]:
    runners = {"burst": phase_burst, "accept": phase_accept, "ladder": phase_ladder, "sync": phase_sync}
    results: dict[str, Any] = {}
    pss: dict[str, dict[str, int]] = {}
    warmup(ctx)
    idle = idle_measure(ctx)
    for phase in PHASES:
        if phase in phases:
            settled = settle(ctx, phase)
            # The ladder profiles each of its steps by itself.
            with contextlib.nullcontext() if phase == "ladder" else ctx.profiler.during(phase):
                results[phase] = runners[phase](ctx)
            results[phase]["settled_before"] = settled
            pss[phase] = ctx.sampler.pss()
    results["resources"] = resources_summary(ctx, results, pss)
    results["resources"]["idle"] = idle
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    scale, knobs = scale_from_env(args.scale)
    out_dir = args.out or Path(
        os.environ.get("BENCH_OUT") or (RESULTS if scale.name == "full" else REPO / ".local" / "bench")
    )
    base_command = " ".join([*(f"{k}={shlex.quote(v)}" for k, v in knobs.items()), args.command])
    work = args.work or Path(tempfile.mkdtemp(prefix="charge-bench-run-"))
    work.mkdir(parents=True, exist_ok=True)

    env = stack_env(work, args)
    django_setup(env)
    stack = Stack(work=work, env=env, api_port=int(env["API_PORT"]))
    run_started = time.monotonic()
    started_at = datetime.now(UTC)
    load_before = os.getloadavg()
    say(
        f"bench: scale {scale.name}, phases {','.join(args.phase_list)}, load average {load_before[0]:.2f} "
        f"on {os.cpu_count()} cores, work dir {work}"
    )
    if load_before[0] > 1.5 and scale.name == "full":
        say("bench: WARNING the machine is busy (load > 1.5): figures will be lower than on a quiet one")
    results: dict[str, Any] = {}
    profiler = Profiler.from_env(out_dir / "profiles", stamp=started_at.strftime("%Y%m%d-%H%M%S"))
    sampler: GroupSampler | None = None
    failed: str | None = None
    try:
        with _signals(scale.max_run_s):
            pairs = bring_up(stack, scale, flower=not args.no_flower)
            sampler = GroupSampler(
                service_groups(stack),
                harness={"harness_loadgen": os.getpid(), "harness_receiver": stack.processes["receiver"].pid},
            ).start()
            profiler.attach({name: p.pid for name, p in stack.processes.items()})
            ctx = PhaseContext(
                stack=stack,
                scale=scale,
                pairs=pairs,
                arrivals=Arrivals(stack.receiver_port),
                sampler=sampler,
                profiler=profiler,
                base_command=base_command,
                run_started=run_started,
                deadline=run_started + scale.max_run_s,
            )
            results = _run_phases(ctx, args.phase_list)
    except (Interrupted, KeyboardInterrupt) as exc:
        failed = f"interrupted ({exc})"
    except Exception as exc:
        failed = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        if sampler is not None:
            sampler.stop()
        profiler.stop()
        say(f"bench: stopping the stack{' (' + failed + ')' if failed else ''}")
        if failed:
            for name, process in stack.processes.items():
                say(f"--- {name} log tail ---\n{process.log_tail(15)}")
        stack.stop_all()

    document = document_build(
        scale=scale,
        env=env,
        results=results,
        started_at=started_at,
        run_started=run_started,
        load_before=load_before,
        base_command=base_command,
        profiler=profiler,
        failed=failed,
    )
    document["targets"] = report.targets(document)
    paths = report.write(document, out_dir)
    say(f"bench: report {paths['json']}")
    say(f"bench: plot   {paths['png']}")
    say("")
    say(report.markdown_table(document))
    if failed:
        return 1
    return 0 if document["consistency_passed"] else 3


if __name__ == "__main__":
    sys.exit(main())
