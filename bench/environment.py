"""Where every benchmark runs and where its figures go.

One project-owned PostgreSQL per `python -m bench` invocation, started with durable settings
(fsync, synchronous_commit and full_page_writes on: the WAL flush per commit is most of what
a real server pays per transaction, and the test suite's fast settings would hide it). Each
benchmark gets fresh databases on it. The facts a figure needs to be read at all (cores,
memory, date, PostgreSQL version and settings, the commit measured) are recorded with it in
`bench/results/<name>.json`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from agent_api.db import migrate, queries
from devcluster import ports, services

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
SQL = queries.load(BENCH_DIR / "sql")


@dataclass
class Bench:
    """What a benchmark is handed: the durable server and how it was asked to run."""

    server: services.Postgres
    quick: bool
    tag: str | None = None

    @property
    def admin_url(self) -> str:
        return self.server.url

    async def fresh_database(self, name: str, migrated: bool = True) -> str:
        """Drop and recreate database `name`; apply the runtime's migrations unless told not to."""
        admin = await asyncpg.connect(self.admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        url = self.server.url_for(name)
        if migrated:
            conn = await asyncpg.connect(url)
            try:
                await migrate.apply(conn)
            finally:
                await conn.close()
        return url

    def command(self, name: str, *extra: str) -> str:
        """The command line that reproduces one benchmark's figures as they were run."""
        words = ["python", "-m", "bench", "--only", name, *extra]
        if self.quick:
            words.append("--quick")
        if self.tag:
            words += ["--tag", self.tag]
        return " ".join(words)


@contextlib.contextmanager
def durable_postgres() -> Iterator[services.Postgres]:
    data_dir = Path(tempfile.mkdtemp(prefix="agentclusters-bench-pg-"))
    server = services.Postgres(data_dir, ports.free_port(), durable=True).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def machine() -> dict[str, Any]:
    """The machine and code a figure was measured on."""
    return {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_bytes": _meminfo_bytes("MemTotal"),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "commit": _git("rev-parse", "--short", "HEAD"),
        # Work-tree changes to the code under measurement make the commit alone misleading.
        "runtime_changed_since_commit": bool(_git("status", "--porcelain", "--", "agent_runtime",
                                                  "agent_api")),
    }


async def postgres_facts(url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        return dict(await conn.fetchrow(SQL["ServerSettings"]))
    finally:
        await conn.close()


def cpu_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def busy_fraction(before: tuple[int, int], after: tuple[int, int]) -> float:
    """Share of the machine's CPU time that was busy between two `cpu_jiffies()` readings."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total else 0.0


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far, from /proc/<pid>/stat."""
    # The command name (field 2) may hold spaces; the fields after its closing parenthesis don't.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def result_path(name: str, tag: str | None = None) -> Path:
    return RESULTS_DIR / (f"{name}-{tag}.json" if tag else f"{name}.json")


def write_result(name: str, result: dict[str, Any], tag: str | None = None) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = result_path(name, tag)
    scratch = path.with_suffix(".json.tmp")
    scratch.write_text(json.dumps(result, indent=2, default=str) + "\n")
    scratch.replace(path)
    return path


def read_results() -> dict[str, dict[str, Any]]:
    """Every recorded result by file stem (`drain`, `idle`, `idle-before`, …)."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(RESULTS_DIR.glob("*.json"))}


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def percentile(ordered: list[float], q: float) -> float:
    """The q-th percentile (0 to 100) of sorted values, interpolated linearly between ranks."""
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def _meminfo_bytes(field: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise LookupError(f"{field} not in /proc/meminfo")


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
    return result.stdout.strip()
