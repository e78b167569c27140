"""Project-owned PostgreSQL and Redis instances: own data directory, own port.

They never touch a server the machine already runs. PostgreSQL refuses to run as root, so
when we are root the server runs as the `postgres` user that Debian's package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from devcluster import ports


def _postgres_bin(name: str) -> str:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=_pg_major)
    if not candidates:
        raise RuntimeError(
            f"PostgreSQL's {name} was not found under /usr/lib/postgresql; "
            "run scripts/bootstrap.sh (it installs Debian's postgresql package)"
        )
    return candidates[-1]


def _pg_major(path: str) -> int:
    return int(path.split("/")[4])


def _as_postgres_user() -> list[str]:
    """Prefix that runs a command as `postgres` when we are root, else as ourselves."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


def _chown_to_postgres(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(path, entry.pw_uid, entry.pw_gid)


@dataclass
class Postgres:
    """A PostgreSQL server in `data_dir` listening on 127.0.0.1:`port`."""

    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> Postgres:
        # Absolute: the server's working directory is its data directory, not ours.
        self.data_dir = self.data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # The postgres user must be able to reach its data directory through every parent.
        for parent in [self.data_dir, *self.data_dir.parents]:
            if parent == Path("/"):
                break
            if os.geteuid() == 0 and parent.stat().st_mode & 0o001 == 0:
                parent.chmod(parent.stat().st_mode | 0o011)
        _chown_to_postgres(self.data_dir)
        pgdata = self.data_dir / "pgdata"
        if not (pgdata / "PG_VERSION").exists():
            pgdata.mkdir(exist_ok=True)
            _chown_to_postgres(pgdata)
            pgdata.chmod(0o700)
            result = subprocess.run(
                [*_as_postgres_user(), _postgres_bin("initdb"), "-D", str(pgdata),
                 "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"],
                check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            )
            if result.returncode != 0:
                raise RuntimeError(f"initdb in {pgdata} failed: {result.stderr.strip()}")
        if self.running():
            return self
        log = self.data_dir / "postgres.log"
        log.touch()
        _chown_to_postgres(log)
        subprocess.run(
            [*_as_postgres_user(), _postgres_bin("pg_ctl"), "-D", str(pgdata), "-l", str(log),
             "-w", "-t", "60", "start", "-o",
             f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir} "
             "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
             "-c max_connections=300"],
            check=True, stdout=subprocess.DEVNULL,
        )
        ports.wait_until(lambda: ports.port_open(self.port), timeout=30, what="PostgreSQL")
        return self

    def running(self) -> bool:
        pid_file = self.data_dir / "pgdata" / "postmaster.pid"
        return pid_file.exists() and ports.port_open(self.port)

    def stop(self) -> None:
        pgdata = self.data_dir / "pgdata"
        if (pgdata / "postmaster.pid").exists():
            subprocess.run(
                [*_as_postgres_user(), _postgres_bin("pg_ctl"), "-D", str(pgdata),
                 "-m", "fast", "-w", "stop"],
                check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )


@dataclass
class Redis:
    """A Redis server in `data_dir` listening on 127.0.0.1:`port`, no persistence."""

    data_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "redis.pid"

    def start(self) -> Redis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server was not found; run scripts/bootstrap.sh "
                "(it installs Debian's redis-server package)"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.running():
            return self
        subprocess.run(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--daemonize", "yes",
             "--dir", str(self.data_dir), "--pidfile", str(self.pid_file),
             "--logfile", str(self.data_dir / "redis.log"), "--save", "", "--appendonly", "no"],
            check=True,
        )
        ports.wait_until(lambda: ports.port_open(self.port), timeout=30, what="Redis")
        return self

    def running(self) -> bool:
        return self.pid_file.exists() and ports.port_open(self.port)

    def stop(self) -> None:
        if not self.pid_file.exists():
            return
        try:
            pid = int(self.pid_file.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.05)
        except (ProcessLookupError, ValueError):
            pass
        self.pid_file.unlink(missing_ok=True)
