"""The passes of a run: the stack's phases on one database, the floors, the SQLite pass beside them."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.config import FLOORS, PYTHON, REPO, STACK_PHASES, Scale, figure_command, say
from benchmarks.context import Arrivals, PhaseContext
from benchmarks.document import resources_summary
from benchmarks.floors import floors_measure
from benchmarks.ladder import phase_ladder
from benchmarks.ocpp_load import phase_ocpp
from benchmarks.phases import idle_measure, phase_accept, phase_burst, settle, warmup
from benchmarks.processes import GroupSampler
from benchmarks.profiling import Profiler
from benchmarks.stack import Stack, seed, service_groups, start_receiver, start_stack, wait_ready
from benchmarks.sync import phase_sync, phase_sync_callback


def bring_up(stack: Stack, scale: Scale, *, flower: bool) -> list[tuple[str, str]]:
    """Seed the database, start the receiver and every process of the stack, wait until all answer."""
    pairs = seed(stack, scale)
    start_receiver(stack)
    start_stack(stack, flower=flower)
    # Generous: on a busy 2-core machine each manage.py in api.sh alone can take 20 s.
    wait_ready(stack, timeout=240)
    return pairs


def run_phases(ctx: PhaseContext, phases: Sequence[str]) -> dict[str, Any]:
    runners = {
        "burst": phase_burst,
        "accept": phase_accept,
        "ladder": phase_ladder,
        "sync_callback": phase_sync_callback,
        "sync": phase_sync,
        "ocpp": phase_ocpp,
    }
    results: dict[str, Any] = {}
    pss: dict[str, dict[str, int]] = {}
    warmup(ctx)
    idle = idle_measure(ctx)
    for phase in STACK_PHASES:
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


@dataclass
class Run:
    """One invocation: what it runs, where it writes, and its clock."""

    args: argparse.Namespace
    scale: Scale
    base_command: str
    out_dir: Path
    stem: str
    work: Path
    env: dict[str, str]
    profiler: Profiler
    started_at: datetime
    started: float = field(default_factory=time.monotonic)

    @property
    def deadline(self) -> float:
        return self.started + self.scale.max_run_s

    def time_left(self) -> float:
        return self.deadline - time.monotonic()

    @property
    def stack_phases(self) -> list[str]:
        return [p for p in STACK_PHASES if p in self.args.phase_list]

    @property
    def floors_wanted(self) -> bool:
        return "floors" in self.args.phase_list and bool(self.args.floor_list)

    def floors_command(self) -> str:
        named: dict[str, object] = {"BENCH_SCALE": self.scale.name, "BENCH_PHASES": "floors"}
        if self.args.floor_list != list(FLOORS):
            named["BENCH_FLOORS"] = ",".join(self.args.floor_list)
        # BENCH_DB too: the floors do not depend on the stack's database.
        return figure_command(self.base_command, phase="floors", named={**named, "BENCH_DB": "postgres"})


def stack_pass(run: Run, stack: Stack) -> dict[str, Any]:
    """Bring the stack up, run its phases, stop it (whatever happened)."""
    sampler: GroupSampler | None = None
    failed = True
    try:
        pairs = bring_up(stack, run.scale, flower=not run.args.no_flower)
        sampler = GroupSampler(
            service_groups(stack),
            harness={"harness_loadgen": os.getpid(), "harness_receiver": stack.processes["receiver"].pid},
        ).start()
        run.profiler.attach({name: p.pid for name, p in stack.processes.items()})
        ctx = PhaseContext(
            stack=stack,
            scale=run.scale,
            pairs=pairs,
            arrivals=Arrivals(stack.receiver_port),
            sampler=sampler,
            profiler=run.profiler,
            base_command=run.base_command,
            run_started=run.started,
            deadline=run.deadline,
        )
        results = run_phases(ctx, run.stack_phases)
        failed = False
        return results
    finally:
        if sampler is not None:
            sampler.stop()
        run.profiler.stop()
        say(f"bench: stopping the stack{' (it failed or was interrupted)' if failed else ''}")
        if failed:
            for name, process in stack.processes.items():
                say(f"--- {name} log tail ---\n{process.log_tail(15)}")
        stack.stop_all()


class FloorsAlongside(threading.Thread):
    """The floors in a thread while the stack starts (tiny scale only: see Scale.floors_during_startup)."""

    def __init__(self, run: Run) -> None:
        super().__init__(name="floors", daemon=True)
        self.run_ = run
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = floors_run(self.run_)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread by result_get()
            self.error = exc

    def result_get(self) -> dict[str, Any]:
        self.join()
        if self.error is not None:
            raise self.error
        return self.result or {}


def floors_run(run: Run) -> dict[str, Any]:
    started = time.monotonic()
    result = floors_measure(
        env=run.env,
        scale=run.scale,
        work=run.work / "floors",
        which=run.args.floor_list,
        command=run.floors_command(),
        say=lambda message: say(f"[{time.monotonic() - run.started:7.1f} s] {message}"),
    )
    result["duration_s"] = round(time.monotonic() - started, 1)
    result["alongside_stack_start"] = run.scale.floors_during_startup and bool(run.stack_phases)
    return result


def _redis_db(run: Run) -> int:
    if run.args.redis_db is not None:
        return int(run.args.redis_db)
    path = urlsplit(os.environ.get("REDIS_URL", "")).path.strip("/")
    return int(path) if path.isdigit() else 0


def sqlite_pass(run: Run) -> dict[str, Any] | None:
    """The second, shorter pass on SQLite: this module again, as a child, with DATABASE_URL unset."""
    phases = [p for p in run.scale.sqlite_phases.split(",") if p in run.stack_phases]
    if not phases:
        return None
    step_s = min(run.scale.step_s, run.scale.sqlite_step_s)
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(BENCH_DB="sqlite", BENCH_STEP_S=f"{step_s:g}")
    stem = f"{run.stem}-sqlite"
    argv = [PYTHON, "-m", "benchmarks.run", "--scale", run.scale.name, "--phases", ",".join(phases)]
    argv += ["--out", str(run.out_dir), "--work", str(run.work / "sqlite"), "--stem", stem]
    argv += ["--redis-db", str((_redis_db(run) + 1) % 16), "--command", run.args.command]
    argv += ["--max-s", f"{max(run.time_left() - 30, 60):.0f}"]
    if run.args.no_flower:
        argv.append("--no-flower")
    path = run.out_dir / f"{stem}.json"
    path.unlink(missing_ok=True)  # an earlier run's of the same day and commit is not this one's
    say(f"bench: the SQLite pass ({','.join(phases)}, ladder steps of {step_s:g} s), in a run of its own")
    # Same process group: a Ctrl-C reaches it too; a TERM to us is passed on below.
    child = subprocess.Popen(argv, env=env, cwd=REPO)
    try:
        returncode = child.wait()
    except BaseException:
        child.terminate()
        try:
            child.wait(timeout=180)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        raise
    if not path.exists():
        return {"json": None, "returncode": returncode, "consistency_passed": False}
    sqlite = json.loads(path.read_text())
    return {
        "json": path.name,
        "plot": sqlite.get("plot"),
        "returncode": returncode,
        "command": sqlite.get("command"),
        "duration_s": sqlite.get("duration_s"),
        "interrupted": sqlite.get("interrupted"),
        "consistency_passed": sqlite.get("consistency_passed"),
        "versions": sqlite.get("versions"),
        "settings": sqlite.get("settings"),
        "phases": sqlite.get("phases"),
        "targets": sqlite.get("targets"),
    }
