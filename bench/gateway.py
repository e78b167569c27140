"""gateway: chat and signed webhook deliveries through the gateway vs straight to the replica.

On a devcluster (real kube-apiserver, the operator, the process kubelet running the replicas'
runtimes, the real gateway process; PostgreSQL is the benchmark's durable one), one
AgentCluster with the echo engine, a synchronous webhook on an echo function, and 5 replicas.
Five paths, measured side by side in one run, interleaved (every path gets a short window in
turn, `ROUNDS` times, at each concurrency):

- `gateway chat pinned`: `chat_with_agent` with `replica` through the official MCP client;
  every concurrent client has its own MCP session, client i pinned to replica i mod 5;
- `gateway chat`: the same, unpinned (the gateway picks the least busy replica);
- `gateway chat pinned, 2025 client`: as `gateway chat pinned`, the official client in its
  `legacy` mode (the 2025 initialize handshake, as 2025-era clients speak; the gateway is
  stateless, so no session id), a request path of its own in the SDK and in the gateway;
- `direct chat`: `POST /chat` to the replica, with the cluster's replica token as the
  gateway sends it, client i to replica i mod 5;
- `gateway webhook`: a signed delivery to the gateway's `/hooks/<ns>/<agent>/sync`;
- `direct webhook`: the same delivery (signed for the same canonical path) to the
  replica's `/hooks/<webhook>`, with the replica token, as the gateway forwards it.

Each chat client keeps one conversation for `TURNS_PER_CONVERSATION` turns and then starts
another, so a turn reads a short memory as a user's follow-up would.

The load generator is one asyncio process on the same 2 cores as the gateway, the replicas,
PostgreSQL and the control plane: its own CPU per request is recorded per path
(`client_cpu_ms`, process time over requests), and so is the gateway's (`gateway_cpu_ms`,
from /proc), so the reader can tell whose cost a latency is. After the measurement, the
gateway is profiled under the unpinned chat load at the highest concurrency (py-spy if it is
from the bench extra, on PATH or in $PY_SPY, else no profile), and the top costs are recorded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import redis.asyncio as aioredis
from kubernetes import client, config
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from agent_api import redis_keys, replica_auth, webhook_signatures
from bench import environment
from devcluster import gateway_process, operator_process, ports, processes, services
from devcluster.cluster import DevCluster

NAMESPACE, AGENT = "bench-gw", "echo"
SECRET = b"bench-webhook-secret"
PATHS = ("gateway chat pinned", "gateway chat", "gateway chat pinned, 2025 client", "direct chat", "gateway webhook",
         "direct webhook")
LEGACY = "gateway chat pinned, 2025 client"
TURNS_PER_CONVERSATION = 10
PROFILE_SECONDS = 10
GOAL_OVERHEAD_MS = 2.0
GOAL_RPS = 1000.0
GOAL_DIRECT_MS = 3.0

Call = Callable[[int], Awaitable[None]]


def sizes(quick: bool) -> dict[str, Any]:
    if quick:
        return {"replicas": 2, "concurrency": [1, 4], "rounds": 1, "window_seconds": 2.0,
                "warmup_seconds": 1.0}
    return {"replicas": 5, "concurrency": [1, 16, 64], "rounds": 3, "window_seconds": 5.0,
            "warmup_seconds": 2.0}


def agent_manifest(replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "agentclusters.io/v1alpha1", "kind": "AgentCluster",
        "metadata": {"name": AGENT, "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "ai": {"provider": "echo"},
            "functions": [{"name": "ingest", "python": {"entrypoint": "agent_runtime.builtins:echo"}}],
            "webhooks": [{"name": "sync", "path": "/sync", "function": "ingest", "synchronous": True,
                          "secretRef": {"name": "hooks", "key": "secret"}}],
            # Room for every concurrent client on one replica: the benchmark measures latency,
            # not the replica's refusals.
            "limits": {"maxConcurrentRuns": 128},
        },
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (and its reaped children) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _cpu_busy() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def _busy_share(before: tuple[int, int], after: tuple[int, int]) -> float | None:
    total = after[1] - before[1]
    return round((after[0] - before[0]) / total, 3) if total else None


class Stack:
    """Redis, a devcluster, the operator and the gateway, on the benchmark's PostgreSQL."""

    def __init__(self, root: Path, database_url: str) -> None:
        self.root = root
        self.database_url = database_url
        self.redis = services.Redis(root / "redis", ports.free_port())
        self.cluster = DevCluster(root / "cluster")
        self.key = operator_process.new_replica_auth_key()
        self.started: list[processes.Process] = []
        self.gateway_url = ""
        self.gateway_pid = 0

    def start(self) -> Stack:
        self.redis.start()
        self.cluster.start()
        kubectl, kubeconfig = self.cluster.bin_dir / "kubectl", self.cluster.kubeconfig
        self.started.append(operator_process.start(self.root / "operator", kubectl, kubeconfig,
                                                   self.database_url, self.redis.url, self.key))
        # As devcluster.gateway_process.start, with no rate limit on chats or webhooks: the
        # benchmark measures the gateway's own cost, not its limits.
        port, metrics_port = ports.free_port(), ports.free_port()
        gateway = processes.Process(
            "gateway",
            [sys.executable, "-m", "agentclusters", "gateway", f"--kubeconfig={kubeconfig}",
             f"--database-url={self.database_url}", f"--redis-url={self.redis.url}", "--host=127.0.0.1",
             f"--port={port}", f"--default-namespace={NAMESPACE}", "--rate-limit-per-minute=100000000",
             "--webhook-rate-limit-per-minute=0", f"--metrics-port={metrics_port}"],
            self.root / "logs" / "gateway.log",
            env={**os.environ, replica_auth.MASTER_KEY_ENV: self.key},
        ).start()
        self.started.append(gateway)
        ports.wait_until(lambda: gateway.check_alive() or ports.port_open(port), timeout=60, what="the gateway")
        self.gateway_url, self.gateway_pid = f"http://127.0.0.1:{port}", gateway.pid
        return self

    def stop(self) -> None:
        for process in reversed(self.started):
            process.stop()
        self.cluster.stop()
        self.redis.stop()


async def _deploy(stack: Stack, replicas: int) -> tuple[str, dict[str, str]]:
    """The agent, ready on every replica: the caller's token and each replica's address."""
    api = config.new_client_from_config(config_file=str(stack.cluster.kubeconfig))
    try:
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": NAMESPACE}})
        await _until(lambda: core.read_namespaced_service_account("default", NAMESPACE), 60, "the namespace")
        core.create_namespaced_secret(NAMESPACE, {"metadata": {"name": "hooks"},
                                                  "data": {"secret": base64.b64encode(SECRET).decode()}})
        client.CustomObjectsApi(api).create_namespaced_custom_object(
            "agentclusters.io", "v1alpha1", NAMESPACE, "agentclusters", agent_manifest(replicas))
    finally:
        api.close()
    token = gateway_process.issue_caller_token(stack.cluster.bin_dir / "kubectl", stack.cluster.kubeconfig,
                                               NAMESPACE)
    registry = aioredis.from_url(stack.redis.url, decode_responses=True)
    try:
        async def addresses() -> dict[str, str] | None:
            names = await registry.smembers(redis_keys.replicas_set_key(NAMESPACE, AGENT))
            found = {}
            for name in names:
                entry = await registry.hgetall(redis_keys.replica_key(NAMESPACE, AGENT, name))
                if entry.get("ready") == "1" and entry.get("address"):
                    found[name] = entry["address"]
            return found if len(found) == replicas else None

        found = await _until(addresses, 300, f"{replicas} ready replicas in the registry")
    finally:
        await registry.aclose()
    return token, found


async def _until(probe: Callable[[], Any], within: float, what: str) -> Any:
    deadline = time.monotonic() + within
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            answer = probe()
            if asyncio.iscoroutine(answer):
                answer = await answer
            if answer:
                return answer
        except Exception as error:  # not there yet
            last = error
        await asyncio.sleep(0.5)
    raise RuntimeError(f"timed out waiting for {what}" + (f": {last}" if last else ""))


class Clients:
    """The callers of every path at one concurrency: MCP sessions (one per client), one
    aiohttp session for the plain HTTP paths."""

    def __init__(self, stack: Stack, token: str, addresses: dict[str, str], concurrency: int) -> None:
        self.stack, self.token, self.concurrency = stack, token, concurrency
        self.members = sorted(addresses)
        self.addresses = addresses
        self.replica_token = replica_auth.token(replica_auth.master_key(stack.key, who="bench"), NAMESPACE, AGENT)
        self.mcp: list[Any] = []
        self.legacy: list[Any] = []
        self.http: aiohttp.ClientSession | None = None
        self._exit = contextlib.AsyncExitStack()
        self._turn = itertools.count()

    async def __aenter__(self) -> Clients:
        self.http = await self._exit.enter_async_context(aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=120)))
        for sessions, mode in ((self.mcp, "auto"), (self.legacy, "legacy")):
            for _ in range(self.concurrency):
                http = await self._exit.enter_async_context(httpx2.AsyncClient(
                    headers={"Authorization": f"Bearer {self.token}"}, timeout=httpx2.Timeout(120, connect=10)))
                sessions.append(await self._exit.enter_async_context(
                    Client(streamable_http_client(f"{self.stack.gateway_url}/mcp", http_client=http), mode=mode)))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._exit.aclose()

    def conversation(self, index: int, turn: int) -> str:
        return f"c{self.concurrency}-{index}-{turn // TURNS_PER_CONVERSATION}"

    def calls(self) -> dict[str, Call]:
        return {"gateway chat pinned": lambda i: self._mcp_chat(i, pinned=True),
                "gateway chat": lambda i: self._mcp_chat(i, pinned=False),
                LEGACY: lambda i: self._mcp_chat(i, pinned=True, legacy=True),
                "direct chat": self._direct_chat,
                "gateway webhook": lambda i: self._webhook(i, direct=False),
                "direct webhook": lambda i: self._webhook(i, direct=True)}

    async def _mcp_chat(self, index: int, pinned: bool, legacy: bool = False) -> None:
        arguments: dict[str, Any] = {"name": AGENT, "namespace": NAMESPACE, "message": "hello there",
                                     "conversation_id": self.conversation(index, next(self._turn))}
        if pinned:
            arguments["replica"] = self.members[index % len(self.members)]
        session = (self.legacy if legacy else self.mcp)[index]
        result = await session.call_tool("chat_with_agent", arguments, read_timeout_seconds=120)
        if result.is_error:
            raise RuntimeError(" ".join(getattr(c, "text", "") for c in result.content))

    async def _direct_chat(self, index: int) -> None:
        # As agent_gateway.runtime_client sends it, the conversation bound to a caller key.
        replica = self.members[index % len(self.members)]
        body = {"message": "hello there", "conversation_id": "bench:" + self.conversation(index, next(self._turn))}
        async with self.http.post(f"{self.addresses[replica]}/chat", json=body,
                                  headers={"Authorization": f"Bearer {self.replica_token}"}) as response:
            answer = await response.read()
            if response.status != 200:
                raise RuntimeError(f"direct chat: HTTP {response.status}: {answer[:300]!r}")

    async def _webhook(self, index: int, direct: bool) -> None:
        body = json.dumps({"n": index}).encode()
        headers = {**webhook_signatures.headers(SECRET, webhook_signatures.hook_path(NAMESPACE, AGENT, "/sync"),
                                                body), "Content-Type": "application/json"}
        if direct:
            replica = self.members[index % len(self.members)]
            url = f"{self.addresses[replica]}/hooks/sync"
            headers["Authorization"] = f"Bearer {self.replica_token}"
        else:
            url = f"{self.stack.gateway_url}/hooks/{NAMESPACE}/{AGENT}/sync"
        async with self.http.post(url, data=body, headers=headers) as response:
            answer = await response.read()
            if response.status != 200:
                raise RuntimeError(f"webhook ({'direct' if direct else 'gateway'}): HTTP {response.status}: "
                                   f"{answer[:300]!r}")


async def window(call: Call, concurrency: int, seconds: float) -> dict[str, Any]:
    """`concurrency` clients calling in a loop for `seconds`: latencies and counts."""
    latencies: list[float] = []
    errors: list[str] = []
    stop_at = time.perf_counter() + seconds

    async def client_loop(index: int) -> None:
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            try:
                await call(index)
            except Exception as error:  # counted and shown, never fatal to the benchmark
                errors.append(str(error)[:300])
                await asyncio.sleep(0.05)
                continue
            latencies.append((time.perf_counter() - began) * 1000)

    began, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client_loop(i) for i in range(concurrency)))
    return {"latencies": latencies, "errors": errors, "seconds": time.perf_counter() - began,
            "client_cpu": time.process_time() - cpu}


def _summary(windows: list[dict[str, Any]], gateway_cpu: float) -> dict[str, Any]:
    latencies = sorted(itertools.chain.from_iterable(w["latencies"] for w in windows))
    seconds = sum(w["seconds"] for w in windows)
    errors = list(itertools.chain.from_iterable(w["errors"] for w in windows))
    count = len(latencies)
    return {
        "requests": count, "errors": len(errors), "first_errors": errors[:3],
        "p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "p99_ms": round(latencies[min(count - 1, int(count * 0.99))], 2) if latencies else None,
        "requests_per_second": round(count / seconds, 1) if seconds else None,
        "client_cpu_ms": round(sum(w["client_cpu"] for w in windows) * 1000 / count, 3) if count else None,
        "gateway_cpu_ms": round(gateway_cpu * 1000 / count, 3) if count else None,
    }


async def measure(stack: Stack, token: str, addresses: dict[str, str], size: dict[str, Any]
                  ) -> list[dict[str, Any]]:
    rows = []
    for concurrency in size["concurrency"]:
        async with Clients(stack, token, addresses, concurrency) as clients:
            calls = clients.calls()
            for call in calls.values():  # sessions, connections, statement caches warm
                await window(call, concurrency, size["warmup_seconds"])
            windows: dict[str, list[dict[str, Any]]] = {path: [] for path in PATHS}
            gateway_cpu = dict.fromkeys(PATHS, 0.0)
            for _ in range(size["rounds"]):
                for path in PATHS:
                    before = _cpu_seconds(stack.gateway_pid)
                    windows[path].append(await window(calls[path], concurrency, size["window_seconds"]))
                    gateway_cpu[path] += _cpu_seconds(stack.gateway_pid) - before
            for path in PATHS:
                row = {"path": path, "concurrency": concurrency, **_summary(windows[path], gateway_cpu[path])}
                rows.append(row)
                print(f"gateway: c={concurrency:<3} {path:<20} p50 {row['p50_ms']} ms  p99 {row['p99_ms']} ms  "
                      f"{row['requests_per_second']} req/s  errors {row['errors']}", flush=True)
    return rows


def _py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"  # the bench extra installs it in the venv
    return os.environ.get("PY_SPY") or shutil.which("py-spy") or (str(beside) if beside.exists() else None)


async def profile(stack: Stack, token: str, addresses: dict[str, str], concurrency: int,
                  seconds: int) -> dict[str, Any]:
    """The gateway's top costs under unpinned chat load, sampled by py-spy: only the thread
    holding the GIL is sampled (`--gil`), so the shares are of the gateway's Python CPU time,
    not of its idle threads' waiting."""
    spy = _py_spy()
    if spy is None:
        return {"tool": None, "note": "py-spy not found (pip install py-spy, or set PY_SPY): no profile"}
    raw = stack.root / "gateway-profile.txt"
    async with Clients(stack, token, addresses, concurrency) as clients:
        # Each new session lists the tools at its first call (the client validates results
        # against their output schemas): not what a call costs, so not sampled.
        await window(clients.calls()["gateway chat"], concurrency, 3)
        sampler = await asyncio.create_subprocess_exec(
            spy, "record", "-p", str(stack.gateway_pid), "-d", str(seconds), "-f", "raw", "-o", str(raw), "--gil",
            "-r", "200", stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        await window(clients.calls()["gateway chat"], concurrency, seconds + 1)
        _, stderr = await asyncio.wait_for(sampler.communicate(), 60)
    if not raw.exists():
        return {"tool": "py-spy", "note": f"py-spy failed: {stderr.decode(errors='replace')[-300:]}"}
    return {"tool": "py-spy", "concurrency": concurrency, "seconds": seconds, **top_costs(raw.read_text())}


def top_costs(raw: str, count: int = 15) -> dict[str, Any]:
    """Self and inclusive shares of the sampled frames (py-spy's raw `stack;stack;... n` lines)."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.splitlines():
        stack, _, number = line.rpartition(" ")
        if not number.isdigit():
            continue
        samples = int(number)
        total += samples
        frames = stack.split(";")
        own[frames[-1]] = own.get(frames[-1], 0) + samples
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + samples

    def top(counts: dict[str, int], keep: Callable[[str], bool]) -> list[list[Any]]:
        # Frames on (nearly) every stack (the event loop, the entry point) say nothing.
        ranked = sorted(((n, f) for f, n in counts.items() if keep(f) and n < 0.9 * total), reverse=True)[:count]
        return [[frame, round(100 * n / total, 1)] for n, frame in ranked]

    # Inclusive: the project's and its libraries' functions, not the interpreter's frames.
    libraries = ("agent_gateway/", "mcp/", "starlette/", "uvicorn/", "aiohttp/", "redis/", "kubernetes/",
                 "pydantic", "httpx", "anyio/", "sse_starlette/", "asyncpg/", "json/", "logging/")
    packages: dict[str, int] = {}
    for frame, samples in own.items():
        packages[_package(frame)] = packages.get(_package(frame), 0) + samples
    return {"samples": total, "self": top(own, lambda f: True),
            "inclusive": top(inclusive, lambda f: any(part in f for part in libraries)),
            # The gateway's own steps (auth, the AgentCluster read, routing, rate limit, the
            # replica call), below the MCP machinery that wraps them all.
            "gateway_inclusive": top(inclusive, lambda f: "agent_gateway/" in f and "main.py" not in f),
            "self_by_package": [[name, round(100 * n / total, 1)]
                                for n, name in sorted(((n, p) for p, n in packages.items()), reverse=True)]}


def _package(frame: str) -> str:
    """The top-level package of a sampled frame, `function (package/module.py:line)`."""
    where = frame.rpartition(" (")[2]
    if "/" not in where:
        return "python (builtins, frozen modules)"
    return where.split("/", 1)[0]


async def run(bench: environment.Bench) -> dict[str, Any]:
    size = sizes(bench.quick)
    database_url = await bench.fresh_database("gateway")
    root = Path(tempfile.mkdtemp(prefix="agentclusters-bench-gateway-"))
    stack = Stack(root, database_url)
    try:
        await asyncio.to_thread(stack.start)
        token, addresses = await _deploy(stack, size["replicas"])
        busy_before, load_before = _cpu_busy(), os.getloadavg()[0]
        rows = await measure(stack, token, addresses, size)
        machine_busy = _busy_share(busy_before, _cpu_busy())
        load_after = os.getloadavg()[0]
        profiled = await profile(stack, token, addresses, max(size["concurrency"]),
                                 3 if bench.quick else PROFILE_SECONDS)
    finally:
        await asyncio.to_thread(stack.stop)
        shutil.rmtree(root, ignore_errors=True)
    return {"command": bench.command("gateway"), **size, "paths": list(PATHS), "rows": rows,
            "turns_per_conversation": TURNS_PER_CONVERSATION, "profile": profiled,
            # Everything else on the machine (other work included) competes for the 2 cores:
            # a run's figures are comparable with another's only at a similar load.
            "load_average": [round(load_before, 1), round(load_after, 1)],
            "machine_cpu_busy": machine_busy,
            "load_generator": "one asyncio process (official MCP client, aiohttp) on the same 2 cores"}


# -- the report ------------------------------------------------------------------------------

def _row(result: dict[str, Any], path: str, concurrency: int) -> dict[str, Any] | None:
    return next((r for r in result["rows"] if r["path"] == path and r["concurrency"] == concurrency), None)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render(variants: list[tuple[str, dict[str, Any]]]) -> tuple[str, list[Path]]:
    parts = []
    for label, result in variants:
        load = result.get("load_average")
        busy = result.get("machine_cpu_busy")
        context = (f"; load average {load[0]:g} → {load[1]:g}, the machine's CPUs {busy:.0%} busy while measuring"
                   if load and busy is not None else "")
        lines = [f"**{label}** ({result['replicas']} replicas, {result['rounds']} interleaved rounds of "
                 f"{result['window_seconds']:g} s per path and concurrency{context})", "",
                 "| path | clients | p50 ms | p99 ms | requests/s | client CPU ms/req | gateway CPU ms/req | errors |",
                 "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in result["rows"]:
            lines.append(f"| {r['path']} | {r['concurrency']} | {_fmt(r['p50_ms'], 2)} | {_fmt(r['p99_ms'], 2)} | "
                         f"{_fmt(r['requests_per_second'])} | {_fmt(r['client_cpu_ms'], 2)} | "
                         f"{_fmt(r['gateway_cpu_ms'], 2)} | {r['errors']} |")
        parts.append("\n".join(lines))
    parts.append(reading(variants))
    parts.append(_profile_text(variants[-1][1]))
    return "\n\n".join(parts) + "\n\n![gateway](results/gateway.png)", [plot(variants)]


def reading(variants: list[tuple[str, dict[str, Any]]]) -> str:
    """The goals, judged from the figures."""
    lines = ["Reading (computed from the figures above):", ""]
    for label, result in variants:
        low, high = min(result["concurrency"]), max(result["concurrency"])
        direct = _row(result, "direct chat", low)
        pinned = _row(result, "gateway chat pinned", low)
        hook, hook_direct = _row(result, "gateway webhook", low), _row(result, "direct webhook", low)
        busy = _row(result, "gateway chat", high)
        busy_direct = _row(result, "direct chat", high)
        if direct and pinned and direct["p50_ms"] and pinned["p50_ms"]:
            overhead = pinned["p50_ms"] - direct["p50_ms"]
            verdict = "meets" if overhead <= GOAL_OVERHEAD_MS else "misses"
            lines.append(f"- {label}: gateway chat overhead at {low} client: +{overhead:.2f} ms p50 "
                         f"({pinned['p50_ms']:.2f} vs {direct['p50_ms']:.2f} ms direct), which {verdict} the "
                         f"≤ {GOAL_OVERHEAD_MS:g} ms goal; the direct turn itself is {direct['p50_ms']:.2f} ms p50.")
        legacy = _row(result, LEGACY, low)
        if direct and legacy and direct["p50_ms"] and legacy["p50_ms"]:
            lines.append(f"- {label}: the same through a 2025-era client (handshake protocol): "
                         f"+{legacy['p50_ms'] - direct['p50_ms']:.2f} ms p50 ({legacy['p50_ms']:.2f} ms), gateway "
                         f"CPU {_fmt(legacy['gateway_cpu_ms'], 2)} ms per chat against "
                         f"{_fmt(pinned and pinned['gateway_cpu_ms'], 2)} ms at 2026-07-28.")
        if direct and pinned and direct["p50_ms"] and pinned["p50_ms"]:
            extra_client = (pinned["client_cpu_ms"] or 0) - (direct["client_cpu_ms"] or 0)
            extra_gateway = pinned["gateway_cpu_ms"] or 0
            lines.append(f"- {label}: of that overhead, CPU per chat at {low} client: the gateway "
                         f"{extra_gateway:.2f} ms, the load generator's MCP client {extra_client:.2f} ms more than "
                         "its plain HTTP call (the official client's own cost, counted in the overhead).")
        if hook and hook_direct and hook["p50_ms"] and hook_direct["p50_ms"]:
            lines.append(f"- {label}: webhook overhead at {low} client: +{hook['p50_ms'] - hook_direct['p50_ms']:.2f} "
                         f"ms p50 ({hook['p50_ms']:.2f} vs {hook_direct['p50_ms']:.2f} ms).")
        if busy and busy["requests_per_second"]:
            verdict = "meets" if busy["requests_per_second"] >= GOAL_RPS else "misses"
            gateway_cpu = busy["gateway_cpu_ms"] or 0
            ceiling = 1000 / gateway_cpu if gateway_cpu else None
            lines.append(
                f"- {label}: {busy['requests_per_second']:,.0f} chat requests/s through the gateway at {high} "
                f"clients on {result['replicas']} replicas ({verdict} the {GOAL_RPS:,.0f}/s goal; direct: "
                f"{_fmt(busy_direct and busy_direct['requests_per_second'], 0)}/s). The gateway spent "
                f"{gateway_cpu:.2f} ms of CPU per request (one core's ceiling: {_fmt(ceiling, 0)}/s) and the load "
                f"generator {_fmt(busy['client_cpu_ms'], 2)} ms; both share the 2 cores with the replicas, "
                "PostgreSQL and the control plane.")
    before = dict(variants).get("before")
    now = next((result for label, result in variants if label != "before"), None)
    if before is not None and now is not None:
        low = min(now["concurrency"])
        pairs = [(path, _row(before, path, low), _row(now, path, low)) for path in PATHS]
        changes = ", ".join(f"{path} {old['p50_ms']:.2f} → {new['p50_ms']:.2f} ms"
                            for path, old, new in pairs if old and new and old["p50_ms"] and new["p50_ms"])
        lines.append(f"- before → now, p50 at {low} client: {changes}.")
        direct = _row(now, "direct chat", low)
        if direct and direct["p50_ms"]:
            verdict = "meets" if direct["p50_ms"] < GOAL_DIRECT_MS else "misses"
            lines.append(f"- The replica's own echo turn (direct chat) is {direct['p50_ms']:.2f} ms p50 now, which "
                         f"{verdict} the < {GOAL_DIRECT_MS:g} ms goal.")
    return "\n".join(lines)


def _profile_text(result: dict[str, Any]) -> str:
    profiled = result.get("profile") or {}
    if not profiled.get("inclusive"):
        return f"Gateway profile: {profiled.get('note', 'none recorded')}."
    rows = "\n".join(f"| {frame} | {share} |" for frame, share in profiled["inclusive"][:12])
    own = "\n".join(f"| {frame} | {share} |" for frame, share in profiled["self"][:8])
    steps = "\n".join(f"| {frame} | {share} |" for frame, share in profiled.get("gateway_inclusive", [])[:12])
    packages = ", ".join(f"{name} {share}%" for name, share in profiled.get("self_by_package", [])[:10])
    return (f"Where the gateway's time goes (py-spy, {profiled['samples']} samples over {profiled['seconds']} s of "
            f"unpinned chat at {profiled['concurrency']} clients, the thread holding the GIL; % of samples):\n\n"
            f"| function (inclusive) | % |\n| --- | ---: |\n{rows}\n\n| function (self) | % |\n| --- | ---: |\n{own}"
            f"\n\n| the gateway's own functions (inclusive) | % |\n| --- | ---: |\n{steps}"
            f"\n\nSelf time by package: {packages}.")


def plot(variants: list[tuple[str, dict[str, Any]]]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(1, 2, figsize=(11, 4.2), sharey=False)
    styles = {"gateway chat pinned": ("tab:blue", "-"), "gateway chat": ("tab:cyan", "-"),
              LEGACY: ("tab:purple", ":"),
              "direct chat": ("tab:green", "-"), "gateway webhook": ("tab:red", "--"),
              "direct webhook": ("tab:orange", "--")}
    for label, result in variants:
        marker = "o" if label != "before" else "x"
        for path in PATHS:
            rows = sorted((r for r in result["rows"] if r["path"] == path and r["p50_ms"]),
                          key=lambda r: r["concurrency"])
            if not rows:
                continue
            color, style = styles[path]
            name = path if label != "before" else f"{path} (before)"
            alpha = 1.0 if label != "before" else 0.45
            axes[0].plot([r["concurrency"] for r in rows], [r["p50_ms"] for r in rows], style, color=color,
                         marker=marker, alpha=alpha, label=name)
            axes[1].plot([r["concurrency"] for r in rows], [r["p99_ms"] for r in rows], style, color=color,
                         marker=marker, alpha=alpha, label=name)
    for axis, title in zip(axes, ("p50", "p99"), strict=True):
        axis.set_xscale("log", base=2)
        axis.set_xticks(variants[-1][1]["concurrency"], [str(c) for c in variants[-1][1]["concurrency"]])
        axis.set_yscale("log")
        axis.set_xlabel("concurrent clients")
        axis.set_ylabel(f"{title} latency (ms)")
        axis.set_title(f"{title}: gateway vs direct to the replica")
        axis.grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=7)
    figure.tight_layout()
    path = environment.RESULTS_DIR / "gateway.png"
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path
