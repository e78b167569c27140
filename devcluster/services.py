"""Project-owned PostgreSQL, PgBouncer and Redis instances: own data directory, own port.

They never touch a server the machine already runs. PostgreSQL and PgBouncer refuse to run as
root, so when we are root they run as the `postgres` user that Debian's package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import resource
import secrets
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


def _make_postgres_dir(path: Path) -> None:
    """Create `path` for a server run as `postgres`, reachable through every parent."""
    path.mkdir(parents=True, exist_ok=True)
    for parent in [path, *path.parents]:
        if parent == Path("/"):
            break
        if os.geteuid() == 0 and parent.stat().st_mode & 0o001 == 0:
            parent.chmod(parent.stat().st_mode | 0o011)
    _chown_to_postgres(path)


@dataclass
class Postgres:
    """A PostgreSQL server in `data_dir` listening on 127.0.0.1:`port`: `postgres` logs in
    without a password, every other role with SCRAM-SHA-256 (`_write_hba`)."""

    data_dir: Path
    port: int
    # Tests and the dev cluster trade crash safety for speed; benchmarks must not, or every
    # commit would skip the WAL flush that dominates a real server's cost per transaction.
    durable: bool = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> Postgres:
        # Absolute: the server's working directory is its data directory, not ours.
        self.data_dir = self.data_dir.resolve()
        _make_postgres_dir(self.data_dir)
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
        self._write_hba(pgdata / "pg_hba.conf")
        if self.running():
            subprocess.run([*_as_postgres_user(), _postgres_bin("pg_ctl"), "-D", str(pgdata),
                            "reload"], check=True, stdout=subprocess.DEVNULL)
            return self
        log = self.data_dir / "postgres.log"
        log.touch()
        _chown_to_postgres(log)
        durability = "on" if self.durable else "off"
        subprocess.run(
            [*_as_postgres_user(), _postgres_bin("pg_ctl"), "-D", str(pgdata), "-l", str(log),
             "-w", "-t", "60", "start", "-o",
             f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data_dir} "
             f"-c fsync={durability} -c synchronous_commit={durability} "
             f"-c full_page_writes={durability} -c max_connections=300"],
            check=True, stdout=subprocess.DEVNULL,
        )
        ports.wait_until(lambda: ports.port_open(self.port), timeout=30, what="PostgreSQL")
        return self

    @staticmethod
    def _write_hba(path: Path) -> None:
        """`postgres` (the operator's and the tests' privileged role) needs no password; every
        other role (the namespaces' tenant roles) proves its password with SCRAM-SHA-256, so
        a wrong or rotated-away password is refused as it would be in production."""
        path.write_text(
            "local all postgres trust\n"
            "local all all scram-sha-256\n"
            "host all postgres 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
            "host all postgres ::1/128 trust\n"
            "host all all ::1/128 scram-sha-256\n"
        )
        _chown_to_postgres(path)

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
class PgBouncer:
    """PgBouncer in `data_dir` listening on 127.0.0.1:`port`, in front of a PostgreSQL on
    127.0.0.1:`upstream_port` (every database name maps to the same name there).

    Transaction pooling, as production deployments run it: a server connection is a client's
    only for one transaction, so a client must not rely on session state (asyncpg needs
    `statement_cache_size=0`). A transaction idle for `idle_transaction_timeout` seconds is
    ended by PgBouncer, the way a frozen client is cut off in production. The startup
    parameters PgBouncer cannot track (asyncpg's `server_settings`, JDBC's
    `extra_float_digits`) are ignored instead of refused.

    Logins, as a real deployment does them: server connections log in as the client's own
    user (never one shared user, which would defeat the tenant roles' row-level security).
    `postgres` is trusted (the dev servers trust it too). Every other user proves its
    password with SCRAM-SHA-256 against the verifier PgBouncer looks up in PostgreSQL
    (`auth_query`, as the unprivileged `pgbouncer_auth` through a SECURITY DEFINER function
    that only answers for tenant roles: `install_auth_lookup`), then PgBouncer logs in to
    PostgreSQL with the keys of that same SCRAM exchange: no password is stored here.
    """

    data_dir: Path
    port: int
    upstream_port: int
    max_client_conn: int = 500
    default_pool_size: int = 20
    idle_transaction_timeout: float = 5.0

    AUTH_USER = "pgbouncer_auth"

    @property
    def url(self) -> str:
        return self.url_for("postgres")

    def url_for(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "pgbouncer.pid"

    @property
    def _auth_password_file(self) -> Path:
        return self.data_dir / "auth_user.password"

    def start(self) -> PgBouncer:
        binary = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
        if binary is None:
            raise RuntimeError(
                "pgbouncer was not found; run scripts/bootstrap.sh "
                "(it installs Debian's pgbouncer package)"
            )
        self.data_dir = self.data_dir.resolve()
        _make_postgres_dir(self.data_dir)
        if self.running():
            return self
        if not self._auth_password_file.exists():
            self._auth_password_file.write_text(secrets.token_hex(24))
        auth_password = self._auth_password_file.read_text()
        auth_file = self.data_dir / "userlist.txt"
        auth_file.write_text(f'"postgres" ""\n"{self.AUTH_USER}" "{auth_password}"\n')
        hba_file = self.data_dir / "pgbouncer_hba.conf"
        hba_file.write_text("host all postgres 127.0.0.1/32 trust\n"
                            "host all all 127.0.0.1/32 scram-sha-256\n")
        config = self.data_dir / "pgbouncer.ini"
        config.write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={self.upstream_port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\n"
            f"unix_socket_dir = {self.data_dir}\n"
            f"logfile = {self.data_dir / 'pgbouncer.log'}\npidfile = {self.pid_file}\n"
            f"auth_type = hba\nauth_hba_file = {hba_file}\nauth_file = {auth_file}\n"
            f"auth_user = {self.AUTH_USER}\n"
            "auth_query = SELECT usename, passwd FROM pgbouncer.get_auth($1)\n"
            "admin_users = postgres\n"
            "pool_mode = transaction\n"
            f"max_client_conn = {self.max_client_conn}\n"
            f"default_pool_size = {self.default_pool_size}\n"
            f"idle_transaction_timeout = {self.idle_transaction_timeout}\n"
            "ignore_startup_parameters = extra_float_digits,"
            "idle_in_transaction_session_timeout,statement_timeout\n"
            # After a PostgreSQL restart, reconnect within a second rather than 15.
            "server_login_retry = 1\n"
        )
        for path in (auth_file, hba_file, config, self._auth_password_file):
            path.chmod(0o600)
            _chown_to_postgres(path)
        result = subprocess.run(
            [binary, "-d", str(config)], preexec_fn=_pgbouncer_process_setup,
            check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"pgbouncer failed to start: {result.stderr.strip()}")
        ports.wait_until(lambda: ports.port_open(self.port), timeout=30, what="PgBouncer")
        return self

    def install_auth_lookup(self, database: str) -> None:
        """What a DBA does once per database PgBouncer serves tenant roles for (PgBouncer 1.18
        runs `auth_query` in the client's database): the lookup user with this PgBouncer's
        password, and the function it may call. Run as `postgres` (reading pg_authid needs a
        superuser); the operator's role could not do it, and does not need to."""
        password = self._auth_password_file.read_text()
        psql = _postgres_bin("psql")
        result = subprocess.run(
            [psql, "-h", "127.0.0.1", "-p", str(self.upstream_port), "-U", "postgres",
             "-d", database, "-v", "ON_ERROR_STOP=1", "-q", "-c",
             AUTH_LOOKUP_SQL.replace("@AUTH_USER@", self.AUTH_USER)
             .replace("@AUTH_PASSWORD@", password)],
            check=False, capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"installing PgBouncer's auth lookup in {database} failed: "
                               f"{result.stderr.strip()}")

    def running(self) -> bool:
        return self.pid_file.exists() and ports.port_open(self.port)

    def stop(self) -> None:
        _stop_by_pid_file(self.pid_file)


# PgBouncer's lookup of a client's SCRAM verifier: only for tenant roles (LOGIN members of
# agentclusters_tenant, never a superuser), so the pooler cannot be used to log in as the
# operator or a superuser even with a password. SECURITY DEFINER as its owner (a superuser:
# pg_authid is readable by superusers only), search_path pinned.
AUTH_LOOKUP_SQL = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = '@AUTH_USER@') THEN
        CREATE ROLE @AUTH_USER@ LOGIN;
    END IF;
END
$$;
ALTER ROLE @AUTH_USER@ PASSWORD '@AUTH_PASSWORD@';
CREATE SCHEMA IF NOT EXISTS pgbouncer;
CREATE OR REPLACE FUNCTION pgbouncer.get_auth(p_usename text)
    RETURNS TABLE (usename name, passwd text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT rolname, rolpassword FROM pg_catalog.pg_authid
    WHERE rolname = p_usename AND rolcanlogin AND NOT rolsuper
      AND pg_catalog.pg_has_role(oid, 'agentclusters_tenant', 'MEMBER')
$fn$;
REVOKE ALL ON FUNCTION pgbouncer.get_auth(text) FROM PUBLIC;
GRANT USAGE ON SCHEMA pgbouncer TO @AUTH_USER@;
GRANT EXECUTE ON FUNCTION pgbouncer.get_auth(text) TO @AUTH_USER@;
"""


def _pgbouncer_process_setup() -> None:
    """In the child, before PgBouncer starts: allow as many descriptors as the hard limit
    (two sockets per client and per server connection: the usual 1,024 would cap it near 500
    clients, below `max_client_conn`), then, when we are root, become `postgres` (PgBouncer
    refuses to run as root). Done here rather than with `runuser`, whose PAM session resets
    the limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.setgroups([])
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)


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
        _stop_by_pid_file(self.pid_file)


def _stop_by_pid_file(pid_file: Path) -> None:
    """SIGTERM the daemon whose pid `pid_file` holds and wait (up to 5 s) until it is gone."""
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.05)
    except (ProcessLookupError, ValueError):
        pass
    pid_file.unlink(missing_ok=True)
