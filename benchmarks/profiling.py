"""Where the time goes: py-spy profiles of chosen processes during chosen phases.

    BENCH_PROFILE=api,bridge,authorize,callbacks BENCH_PROFILE_PHASE=ladder:300 make bench

BENCH_PROFILE names processes of the stack (api, bridge, authorize, callbacks, beat, flower);
BENCH_PROFILE_PHASE names phases (burst, accept, ladder:<rate>, ladder for every step, sync; default
every phase); BENCH_PROFILE_GIL=1 keeps only samples that hold the GIL (CPU, not waiting).
py-spy samples the process and its children (the api's workers, the prefork pool) from
outside (ptrace; root or CAP_SYS_PTRACE), without changing them, for the whole phase including its
drain, and writes per process and phase under benchmarks/results/profiles/:
  <stamp>-<phase>-<process>.txt        collapsed stacks ("frame;frame;frame count"; speedscope.app
                                       and flamegraph.pl draw them)
  <stamp>-<phase>-<process>.top.txt    the functions with the most samples, inclusive and self
py-spy is found as BENCH_PYSPY, on PATH or in the venv (it is a locked dev dependency).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path


def pyspy_path() -> str | None:
    given = os.environ.get("BENCH_PYSPY")
    if given:
        return given
    return shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))


class Profiler:
    """Starts py-spy on the chosen processes while a chosen phase runs (or does nothing)."""

    def __init__(self, out_dir: Path, *, stamp: str, processes: list[str], phases: list[str]) -> None:
        self.out_dir = out_dir
        self.stamp = stamp
        self.processes = processes
        self.phases = phases
        self.pids: dict[str, int] = {}
        self.outputs: list[dict[str, str]] = []
        self._running: list[tuple[subprocess.Popen[bytes], Path]] = []

    @classmethod
    def from_env(cls, out_dir: Path, *, stamp: str) -> Profiler:
        processes = [p.strip() for p in os.environ.get("BENCH_PROFILE", "").split(",") if p.strip()]
        phases = [p.strip() for p in os.environ.get("BENCH_PROFILE_PHASE", "").split(",") if p.strip()]
        if processes and pyspy_path() is None:
            print(
                "bench: BENCH_PROFILE is set but py-spy is not installed (`uv tool install py-spy`, or set "
                "BENCH_PYSPY); profiling is off.",
                flush=True,
            )
            processes = []
        return cls(out_dir, stamp=stamp, processes=processes, phases=phases)

    @property
    def enabled(self) -> bool:
        return bool(self.processes)

    def attach(self, pids: dict[str, int]) -> None:
        self.pids = pids

    def wanted(self, phase_key: str) -> bool:
        if not self.enabled:
            return False
        if not self.phases:
            return True
        return phase_key in self.phases or phase_key.split(":", 1)[0] in self.phases

    @contextlib.contextmanager
    def during(self, phase_key: str) -> Iterator[None]:
        if not self.wanted(phase_key):
            yield
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        spy = pyspy_path() or "py-spy"
        for name in self.processes:
            pid = self.pids.get(name)
            if pid is None:
                print(f"bench: no process {name!r} to profile (have {sorted(self.pids)})", flush=True)
                continue
            out = self.out_dir / f"{self.stamp}-{phase_key.replace(':', '-')}-{name}.txt"
            # 47 Hz: on 2 busy cores py-spy itself must not take the CPU it is measuring.
            argv = [spy, "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--rate", "47"]
            argv += ["--output", str(out), "--format", "raw"]
            if os.environ.get("BENCH_PROFILE_GIL"):
                # Only samples holding the GIL: where the CPU goes, not where threads wait.
                argv.append("--gil")
            log = out.with_suffix(".log").open("wb")
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            log.close()
            self._running.append((proc, out))
            self.outputs.append({"phase": phase_key, "process": name, "file": str(out), "tool": "py-spy"})
        try:
            yield
        finally:
            self.stop()

    def stop(self) -> None:
        """End every running py-spy; SIGINT makes it write its flame graph."""
        for proc, out in self._running:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            if out.exists():
                top = out.with_suffix(".top.txt")
                top.write_text(collapsed_summary(out.read_text()))
                print(f"bench: profile {out} (summary {top.name})", flush=True)
            else:
                print(f"bench: profile {out} not written; see the .log beside it", flush=True)
        self._running.clear()


REPO_PREFIX = str(Path(__file__).resolve().parents[1]) + "/"


def _frame_name(frame: str) -> str:
    # py-spy raw frames: "function (path/to/file.py:line)"; one line is one place, not one function.
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", REPO_PREFIX, "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})" if path else name


OUR_TOP_LEVEL = frozenset({"apps", "workers", "project", "manage.py", "benchmarks"})


def _frame_path(frame: str) -> str:
    """The file of a frame, relative as py-spy prints it ("celery/app/trace.py", "apps/...")."""
    path = frame.partition(" (")[2].rsplit(":", 1)[0]
    for marker in ("site-packages/", REPO_PREFIX, "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/lib/python3":
                path = path.split("/", 1)[-1]  # "3.11/threading.py" → "threading.py"
    return path


def _frame_package(frame: str) -> str:
    """Whose code a frame runs: ours (apps/, workers/, project/), an installed package, or Python's."""
    path = _frame_path(frame)
    if not path:
        return "native or unknown"
    top = path.split("/", 1)[0]
    if top in OUR_TOP_LEVEL:
        return f"ours: {top}"
    if path.startswith("<frozen") or top.removesuffix(".py") in sys.stdlib_module_names:
        return "python (standard library)"
    return top.removesuffix(".py")


def _is_ours(frame: str) -> bool:
    # The application's code only: manage.py and benchmarks/ are entry points around it.
    return _frame_path(frame).split("/", 1)[0] in {"apps", "workers", "project"}


def collapsed_summary(text: str, *, top: int = 40) -> str:
    """The functions with the most samples in py-spy's collapsed stacks: inclusive and self."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    under_ours = 0
    total = 0
    for line in text.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        raw = stack.split(";")
        frames = [_frame_name(f) for f in raw]
        for name in set(frames):
            inclusive[name] += count
        own[frames[-1]] += count
        by_package[_frame_package(raw[-1])] += count
        under_ours += count if any(_is_ours(f) for f in raw) else 0
    if not total:
        return "no samples\n"

    def table(counter: Counter[str], limit: int = top) -> list[str]:
        return [f"{100 * n / total:6.1f} %  {name}" for name, n in counter.most_common(limit)]

    return "\n".join(
        [
            f"{total} samples",
            "",
            f"under our code (a frame of apps/, workers/ or project/ on the stack): "
            f"{100 * under_ours / total:.1f} %",
            "",
            "self, by whose code runs (the sample's innermost frame):",
            *table(by_package, 25),
            "",
            "inclusive (the function and what it calls):",
            *table(inclusive),
            "",
            "self (the function's own code):",
            *table(own),
            "",
        ]
    )


if __name__ == "__main__":
    # The summary of any py-spy raw/collapsed file, e.g. of a benchmark run under py-spy directly:
    #   py-spy record --gil --format raw -o hot.txt -- .venv/bin/python -m benchmarks.hot_paths
    #   .venv/bin/python -m benchmarks.profiling hot.txt
    for name in sys.argv[1:] or ["/dev/stdin"]:
        sys.stdout.write(collapsed_summary(Path(name).read_text()))
