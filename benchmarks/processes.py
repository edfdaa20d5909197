"""What every process group of the stack costs, and the benchmark's small helpers around processes.

The processes themselves are harness.processes' (shared with the tests): each leads its own process
group, so its resident memory and CPU time are the sums over the group (the api server's master
and workers, a Celery main process and its pool, a postmaster and its backends). Services started
by scripts (Kafka, Redis, PostgreSQL) are found by the port they listen on.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from harness.processes import REPO

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
# smaps_rollup walks every mapping of a process: read PSS less often than RSS.
PSS_INTERVAL_S = 5.0


def local_service(script: str, command: str, *, data: Path, check: bool = True, **options: str | int) -> None:
    """Run compose/local/<script> (redis.sh, postgres.sh): start, stop or ensure-db on `data`."""
    argv = ["bash", str(REPO / "compose" / "local" / script), command, "--data", str(data)]
    for name, value in options.items():
        argv += [f"--{name}", str(value)]
    subprocess.run(argv, check=check)


def small_report_write(
    out_dir: Path,
    *,
    stem: str,
    what: str,
    command: str,
    load_before: tuple[float, float, float],
    **fields: object,
) -> Path:
    """The JSON of a benchmark beside `make bench` (celery_floor, hot_paths): <stem>-<date>.json."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True, cwd=REPO
    )
    report = {
        "what": what,
        "command": command,
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version(), "os": platform.platform()},
        "commit": commit.stdout.strip(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_before": load_before,
        **fields,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{stem}-{time.strftime('%Y-%m-%d')}.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    return path


# --- /proc ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    pgrp: int
    cpu_ticks: int  # utime + stime
    rss_bytes: int


def proc_stat(pid: int) -> ProcStat | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name may contain spaces and parentheses: the fields start after the last ')'.
    rest = raw[raw.rindex(")") + 2 :].split()
    return ProcStat(
        pid=pid,
        ppid=int(rest[1]),
        pgrp=int(rest[2]),
        cpu_ticks=int(rest[11]) + int(rest[12]),
        rss_bytes=int(rest[21]) * PAGE_SIZE,
    )


def all_pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def pss_bytes(pid: int) -> int:
    """Proportional set size: shared pages split among the processes sharing them (sums correctly)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def listener_pid(port: int) -> int | None:
    """The process listening on TCP `port` (via the socket inode in /proc/net/tcp*)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{inode}]")
    if not inodes:
        return None
    for pid in all_pids():
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    if str(fd.readlink()) in inodes:
                        return pid
    return None


def group_of(pid: int) -> int | None:
    stat = proc_stat(pid)
    return stat.pgrp if stat else None


class GroupSampler:
    """Samples resident memory and CPU time of named process groups once per `interval_s` in a thread.

    CPU time of a group is the sum over every process ever seen in it (its last reading), so a pool
    process that exits mid-run still counts what it used while we watched.
    """

    def __init__(
        self, groups: dict[str, int], *, harness: dict[str, int] | None = None, interval_s: float = 1.0
    ) -> None:
        self.groups = dict(groups)  # name -> process group id
        # The benchmark's own processes (name -> pid), watched alone and left out of the stack's total.
        self.harness = dict(harness or {})
        self.interval_s = interval_s
        self._ticks: dict[str, dict[int, int]] = {name: {} for name in [*groups, *self.harness]}
        self.rss_series: list[tuple[float, dict[str, int]]] = []
        # PSS (shared pages split among their sharers) of each group, read every PSS_INTERVAL_S.
        self.pss_series: list[tuple[float, dict[str, int]]] = []
        self._pss_due = 0.0
        self._members: dict[str, list[int]] = {}
        self._members_at = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="group-sampler", daemon=True)

    def start(self) -> GroupSampler:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def _refresh_members(self) -> None:
        # A group's members: its processes, and children of its leader that started a session of
        # their own (PostgreSQL's backends call setsid(), so they are not in the postmaster's group).
        by_group: dict[int, list[int]] = {}
        for pid in all_pids():
            stat = proc_stat(pid)
            if stat is not None:
                by_group.setdefault(stat.pgrp, []).append(pid)
                if stat.pgrp == pid and stat.ppid in self.groups.values():
                    by_group.setdefault(stat.ppid, []).append(pid)
        self._members = {name: by_group.get(pgid, []) for name, pgid in self.groups.items()}
        self._members_at = time.monotonic()

    @staticmethod
    def _member(stat: ProcStat | None, pgid: int) -> bool:
        return stat is not None and pgid in (stat.pgrp, stat.ppid)

    def sample(self) -> dict[str, int]:
        """One reading; returns the resident memory of each group."""
        with self._lock:
            if time.monotonic() - self._members_at > 3.0:
                self._refresh_members()
            rss: dict[str, int] = {}
            for name, pgid in self.groups.items():
                total = 0
                for pid in self._members.get(name, []):
                    stat = proc_stat(pid)
                    if stat is None or not self._member(stat, pgid):
                        continue
                    total += stat.rss_bytes
                    self._ticks[name][pid] = stat.cpu_ticks
                rss[name] = total
            for name, pid in self.harness.items():
                stat = proc_stat(pid)
                if stat is not None:
                    rss[name] = stat.rss_bytes
                    self._ticks[name][pid] = stat.cpu_ticks
            now = time.monotonic()
            self.rss_series.append((now, rss))
            if now >= self._pss_due:
                self._pss_due = now + PSS_INTERVAL_S
                pss = {
                    name: sum(pss_bytes(pid) for pid in self._members.get(name, [])) for name in self.groups
                }
                self.pss_series.append((now, pss))
            return rss

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds (user + system) used so far by each group, as last sampled."""
        self.sample()
        with self._lock:
            return {name: sum(ticks.values()) / CLOCK_TICKS for name, ticks in self._ticks.items()}

    def pss(self) -> dict[str, int]:
        with self._lock:
            self._refresh_members()
            return {name: sum(pss_bytes(pid) for pid in self._members.get(name, [])) for name in self.groups}

    def rss_between(self, start: float, end: float) -> dict[str, dict[str, int]]:
        """Peak and mean resident memory per group (and the stack total) between two monotonic times."""
        with self._lock:
            window = [rss for at, rss in self.rss_series if start <= at <= end]
        if not window:
            return {}
        names = list(window[0])
        totals = [sum(rss.get(name, 0) for name in self.groups) for rss in window]
        out = {
            name: {
                "peak_bytes": max(rss.get(name, 0) for rss in window),
                "mean_bytes": int(sum(rss.get(name, 0) for rss in window) / len(window)),
            }
            for name in names
        }
        out["stack_total"] = {"peak_bytes": max(totals), "mean_bytes": int(sum(totals) / len(totals))}
        return out
