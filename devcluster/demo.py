"""`make demo`: the product's scenario on a devcluster that starts from nothing.

1. the control plane comes up (building Kubernetes from its Go modules on a cold machine);
2. a StatefulSet's pods run as local processes, each answering HTTP on its own pod IP;
3. an AgentCluster gets five named replicas, scales down to three (the newest two are
   archived), and back up to five (two names never seen before);
4. the same story through MCP, as an AI client would tell it: the gateway's tools called with
   the official MCP client and a ServiceAccount token minted for the gateway (make, a signed
   webhook, scale, schedules in single and cluster mode, a function run now and read back, chat
   with replica affinity (the echo engine says how many earlier turns it was given), archived
   state, scale back up, a webhook delivery and its refused replay);
5. the peak memory of every process, and a few real lines of a replica's and the gateway's
   Prometheus metrics.

Everything runs in a temporary directory and is stopped at the end (`--keep` leaves it up).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import httpx2
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from agent_api import replica_auth, secret_env, webhook_signatures
from devcluster import gateway_process, operator_process, services
from devcluster.cluster import DevCluster
from devcluster.ports import free_port, wait_until

REPO = Path(__file__).resolve().parent.parent


class Demo:
    def __init__(self, cluster: DevCluster) -> None:
        self.cluster = cluster

    def kubectl(self, *args: str, show: bool = True, stdin: str | None = None) -> str:
        if show:
            print(f"\n$ kubectl {' '.join(args)}", flush=True)
        result = subprocess.run(
            [str(self.cluster.bin_dir / "kubectl"), f"--kubeconfig={self.cluster.kubeconfig}", *args],
            input=stdin, capture_output=True, text=True, check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        if show:
            print(result.stdout.rstrip(), flush=True)
        return result.stdout

    def get(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json", show=False))

    def wait(self, what: str, check: Callable[[], bool], timeout: float = 120) -> None:
        wait_until(check, timeout=timeout, what=what, interval=0.5)


def step(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def statefulset_demo(demo: Demo) -> None:
    step("A StatefulSet whose pods are local processes (the process kubelet)")
    manifest = {
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 3, "serviceName": "web",
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "http", "image": "python:3.11",
                    "command": [sys.executable, "-m", "http.server", "8000", "--bind", "$(POD_IP)"],
                    "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": 8000}, "periodSeconds": 1},
                }]},
            },
        },
    }
    demo.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest))
    demo.wait("3 ready web pods", lambda: demo.get("statefulset", "web").get("status", {}).get("readyReplicas") == 3)
    demo.kubectl("get", "pods", "-l", "app=web", "-o", "wide")
    ip = demo.get("pod", "web-1")["status"]["podIP"]
    with urllib.request.urlopen(f"http://{ip}:8000/", timeout=5) as response:
        print(f"\nGET http://{ip}:8000/ -> HTTP {response.status} from web-1's own process")
    demo.kubectl("delete", "statefulset", "web", "--wait=true")


def agentcluster_demo(demo: Demo) -> None:
    step("An AgentCluster: `replicas: 5` becomes five named replicas")
    manifest = yaml.safe_load((REPO / "examples" / "01-minimal.yaml").read_text())
    name = manifest["metadata"]["name"]
    manifest["spec"]["replicas"] = 5
    demo.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest))

    def ready(count: int) -> bool:
        status = demo.get("agentcluster", name).get("status") or {}
        return status.get("readyReplicas") == count and len(status.get("members") or []) == count

    demo.wait("5 ready replicas", lambda: ready(5))
    demo.kubectl("get", "agentclusters")
    first = names(demo, name)
    print("\nmembers (ordinal: name):", ", ".join(f"{o}: {n}" for o, n in first))

    step("Scale down to 3: the newest two stop and are archived")
    demo.kubectl("scale", f"agentcluster/{name}", "--replicas=3")
    demo.wait("3 ready replicas, 2 archived",
              lambda: ready(3) and len(demo.get("agentcluster", name)["status"].get("archived") or []) == 2)
    archived = demo.get("agentcluster", name)["status"]["archived"]
    print("archived:", ", ".join(a["name"] for a in archived))

    step("Scale back up to 5: two names never seen before")
    demo.kubectl("scale", f"agentcluster/{name}", "--replicas=5")
    demo.wait("5 ready replicas", lambda: ready(5))
    final = names(demo, name)
    fresh = sorted({n for _, n in final} - {n for _, n in first})
    print("members:", ", ".join(f"{o}: {n}" for o, n in final))
    print("new names:", ", ".join(fresh))
    demo.kubectl("get", "pods", "-l", f"agentclusters.io/cluster={name}")
    demo.kubectl("describe", "agentcluster", name)


def peak_memory(pids: dict[str, int]) -> dict[str, int]:
    """Peak resident memory (VmHWM, KiB) of each running process, from /proc."""
    peaks = {}
    for name, pid in pids.items():
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except FileNotFoundError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks[name] = int(line.split()[1])
    return peaks


METRIC_LINES = 4  # per metric shown: enough to see the labels, short enough to read


REPLICA_METRICS = ("agentclusters_runs_total", "agentclusters_fire_claims_total", "agentclusters_ai_tokens_total",
                   "agentclusters_webhook_deliveries_total")
GATEWAY_METRICS = ("agentclusters_gateway_tool_calls_total", "agentclusters_gateway_webhook_deliveries_total")


def show_metrics(demo: Demo, gateway: gateway_process.RunningGateway, agent: str = "social-scraper") -> None:
    """A few real lines of a replica's /metrics (as Prometheus scrapes it: the pod's IP, the
    cluster's token from its namespace's Secret) and of the gateway's metrics port. The replica
    shown is the one that did the most of what is shown (chat and the webhook went to one)."""
    token = base64.b64decode(demo.get("secret", replica_auth.SECRET_NAME)["data"][agent]).decode()
    scrapes = []
    for pod in demo.get("pods", "-l", f"agentclusters.io/cluster={agent}")["items"]:
        port = pod["spec"]["containers"][0]["ports"][0]["containerPort"]
        url = f"http://{pod['status']['podIP']}:{port}/metrics"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            text = answer.read().decode()
        scrapes.append((sum(bool(_lines(text, name)) for name in REPLICA_METRICS), url, text))
    _, url, replica = max(scrapes)
    print(f"\nGET {url} (Authorization: Bearer <{agent}'s token from Secret {replica_auth.SECRET_NAME}>)")
    _print_lines(replica, REPLICA_METRICS)
    with urllib.request.urlopen(gateway.metrics_url, timeout=30) as answer:
        served = answer.read().decode()
    print(f"\nGET {gateway.metrics_url} (the gateway's metrics port, apart from /mcp)")
    _print_lines(served, GATEWAY_METRICS)


def _lines(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name + "{")]


def _print_lines(text: str, names: tuple[str, ...]) -> None:
    if not _lines(text, names[0]):
        raise RuntimeError(f"no {names[0]} in the scrape: metrics are missing")
    for name in names:
        for line in _lines(text, name)[:METRIC_LINES]:
            print(f"  {line}")


def replica_pids(demo: Demo) -> dict[str, int]:
    pids = {}
    for pod in demo.get("pods", "-l", "agentclusters.io/cluster")["items"]:
        for container in pod.get("status", {}).get("containerStatuses") or []:
            if container.get("containerID", "").startswith("process://"):
                pids[pod["metadata"]["name"]] = int(container["containerID"].removeprefix("process://"))
    return pids


class McpWalkthrough:
    """Calls the gateway's tools and prints each call and its answer."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def call(self, tool: str, **arguments: object) -> dict:
        shown = ", ".join(f"{k}={v!r}" for k, v in arguments.items())
        print(f"\n\033[36m> {tool}({shown})\033[0m", flush=True)

        async def progress(done: float, total: float | None, message: str | None) -> None:
            print(f"  ... {message or f'{done}/{total}'}", flush=True)

        result = await self.client.call_tool(tool, dict(arguments), progress_callback=progress,
                                             read_timeout_seconds=300)
        text = " ".join(getattr(c, "text", "") for c in result.content)
        if result.is_error:
            code = (result.structured_content or {}).get("code", "?")
            print(f"  \033[31merror ({code}):\033[0m {text}", flush=True)
            return {}
        answer = result.structured_content or {}
        print("  " + json.dumps(answer, indent=2, default=str).replace("\n", "\n  ")[:2500], flush=True)
        return answer


WEBHOOK_SECRET = b"demo-webhook-secret"


def wait_for_webhook_secret(demo: Demo, agent: str, webhook: str) -> None:
    """Adding a webhook hands its Secret to the replicas' environment: wait for the rollout."""
    variable = secret_env.webhook_secret(webhook)

    def rolled() -> bool:
        pods = demo.get("pods", "-l", f"agentclusters.io/cluster={agent}")["items"]
        return bool(pods) and all(
            not pod["metadata"].get("deletionTimestamp")
            and any(e["name"] == variable for e in pod["spec"]["containers"][0].get("env") or [])
            and any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])
            for pod in pods)

    demo.wait(f"the replicas to restart with {variable}", rolled)


async def deliver_webhooks(base_url: str, namespace: str, agent: str, path: str) -> None:
    """A signed delivery runs once; the same delivery again is refused, and so is a stale one."""
    url = f"{base_url}/hooks/{namespace}/{agent}{path}"
    signed_path = webhook_signatures.hook_path(namespace, agent, path)
    body = json.dumps({"event": "mention", "url": "https://example.org/post/1"}).encode()
    headers = {**webhook_signatures.headers(WEBHOOK_SECRET, signed_path, body), "Content-Type": "application/json"}
    print(f"\nPOST {url}")
    for name in (webhook_signatures.TIMESTAMP_HEADER, webhook_signatures.DELIVERY_HEADER,
                 webhook_signatures.SIGNATURE_HEADER):
        print(f"  {name}: {headers[name]}")
    async with httpx2.AsyncClient(timeout=60) as http:
        first = await http.post(url, content=body, headers=headers)
        print(f"-> HTTP {first.status_code}: {first.text[:300]}")
        if first.status_code != 200:
            raise RuntimeError(f"the signed delivery was refused: {first.text}")
        replay = await http.post(url, content=body, headers=headers)
        print(f"\nthe same delivery again -> HTTP {replay.status_code}: {replay.json()['error']}")
        if replay.status_code != 409:
            raise RuntimeError(f"a replayed delivery was not refused: HTTP {replay.status_code}")
        stale = webhook_signatures.headers(WEBHOOK_SECRET, signed_path, body,
                                           timestamp=int(time.time()) - 3600)
        old = await http.post(url, content=body, headers=stale)
        print(f"\nsigned an hour ago -> HTTP {old.status_code}: {old.json()['error']}")
        if old.status_code != 401:
            raise RuntimeError(f"a stale delivery was not refused: HTTP {old.status_code}")


async def mcp_walkthrough(demo: Demo, url: str, token: str) -> None:
    agent = "social-scraper"
    async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=600) as http, \
            Client(streamable_http_client(url, http_client=http)) as client:
        mcp = McpWalkthrough(client)
        step("MCP: one tool call makes an agent, one gives it a function and a signed webhook")
        await mcp.call("make_agent", name=agent, ai_provider="echo")
        await mcp.call("add_function", agent_name=agent, function_name="scraping.fetch",
                       python_entrypoint="agent_runtime.builtins:echo")
        demo.kubectl("create", "secret", "generic", "demo-hooks",
                     f"--from-literal=secret={WEBHOOK_SECRET.decode()}")
        # Referencing a Secret takes the caller's own `get` on it.
        demo.kubectl("create", "role", "read-demo-hooks", "--verb=get", "--resource=secrets",
                     "--resource-name=demo-hooks")
        demo.kubectl("create", "rolebinding", "read-demo-hooks", "--role=read-demo-hooks",
                     "--serviceaccount=default:mcp-caller")
        added = await mcp.call("add_webhook", agent_name=agent, webhook_name="mentions", path="/mentions",
                               function_name="scraping.fetch", secret_name="demo-hooks", synchronous=True)
        if not added:
            raise RuntimeError("add_webhook was refused (see above)")
        wait_for_webhook_secret(demo, agent, "mentions")

        step("MCP: one tool call scales it")
        first = (await mcp.call("scale_agent", name=agent, replicas=5))["members"]

        step("MCP: the same function on a schedule in single mode and in cluster mode")
        single = await mcp.call("add_schedule", agent_name=agent, function_name="scraping.fetch",
                                cron_expression="*/3 * * * * *", schedule_mode="single")
        cluster = await mcp.call("add_schedule", agent_name=agent, function_name="scraping.fetch",
                                 cron_expression="*/3 * * * * *", schedule_mode="cluster")
        await asyncio.sleep(10)
        runs = (await mcp.call("list_runs", agent_name=agent, limit=8))["runs"]
        by_fire: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
        for run in (await client.call_tool("list_runs", {"agent_name": agent, "limit": 200})).structured_content[
                "runs"]:
            by_fire[(run["schedule"], run["fire_time"])].append(run["replica"])
        print(f"\n{len(runs)} newest runs shown; per fire (schedule @ time: replicas that ran it):")
        for (schedule, fire_time), replicas in sorted(by_fire.items(), key=lambda item: item[0][1])[-6:]:
            print(f"  {schedule} @ {fire_time}: {', '.join(sorted(replicas))}")
        await mcp.call("remove_schedule", agent_name=agent, schedule_name=single["name"])
        await mcp.call("remove_schedule", agent_name=agent, schedule_name=cluster["name"])

        step("MCP: run a function now on a named replica, then read the run")
        started = await mcp.call("run_function", name=agent, function="scraping.fetch", replica=first[1],
                                 payload={"url": "https://example.org/post/2"})
        run = await finished_run(mcp, agent, started["run_id"])
        if run.get("status") != "succeeded":
            raise RuntimeError(f"the manual run did not succeed: {run}")

        step("MCP: chat answers with the replica's name; pin it to continue with the one that remembers")
        hello = await mcp.call("chat_with_agent", name=agent, message="hello! which replica are you?")
        pinned = await mcp.call("chat_with_agent", name=agent, message="do you remember me?",
                                replica=hello["replica"])
        other = next(name for name in first if name != hello["replica"])
        elsewhere = await mcp.call("chat_with_agent", name=agent, message="do you remember me?", replica=other)
        print(f"\n{hello['replica']} (pinned) was given the first turn; {other} has never seen this conversation:")
        print(f"  {hello['replica']}: {pinned.get('reply')}\n  {other}: {elsewhere.get('reply')}")
        if "1 earlier turn" not in pinned.get("reply", "") or "no earlier turns" not in elsewhere.get("reply", ""):
            raise RuntimeError("the pinned follow-up did not keep its context (see the replies above)")
        for replica in first[3:]:
            await mcp.call("set_agent_state", agent_name=agent, key="cursor", value={"page": 7}, replica=replica)

        step("MCP: scale to 3 removes the two newest; their state stays, read-only")
        await mcp.call("scale_agent", name=agent, replicas=3)
        await mcp.call("chat_with_agent", name=agent, message="still there?", replica=first[4])
        await mcp.call("get_agent_state", agent_name=agent, key="cursor", replica=first[4])

        step("MCP: scale back to 5: two names never seen before")
        await mcp.call("scale_agent", name=agent, replicas=5)
        await mcp.call("describe_agent", name=agent)

    step("A signed webhook: run once; its replay and a stale delivery are refused")
    await deliver_webhooks(url.removesuffix("/mcp"), "default", agent, "/mentions")


async def finished_run(mcp: McpWalkthrough, agent: str, run_id: int, within: float = 60) -> dict:
    """get_run until the run has finished (a manual run starts at once and ends on its own)."""
    deadline = time.monotonic() + within
    while True:
        run = await mcp.client.call_tool("get_run", {"name": agent, "run_id": run_id})
        answer = run.structured_content or {}
        if answer.get("status") != "running" or time.monotonic() > deadline:
            return await mcp.call("get_run", name=agent, run_id=run_id)
        await asyncio.sleep(0.5)


def names(demo: Demo, cluster: str) -> list[tuple[int, str]]:
    members = demo.get("agentcluster", cluster)["status"]["members"]
    return sorted((m["ordinal"], m["name"]) for m in members)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agentclusters demo", description=__doc__)
    parser.add_argument("--keep", action="store_true", help="leave everything running at the end")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="agentclusters-demo-"))
    step("Bringing up PostgreSQL, Redis and a real Kubernetes control plane (no Docker)")
    started = time.monotonic()
    postgres = services.Postgres(root / "postgres", free_port()).start()
    redis = services.Redis(root / "redis", free_port()).start()
    cluster = DevCluster(root / "cluster")
    operator = None
    gateway = None
    try:
        cluster.start()
        replica_auth_key = operator_process.new_replica_auth_key()
        operator = operator_process.start(root / "cluster", cluster.bin_dir / "kubectl", cluster.kubeconfig,
                                          postgres.url, redis.url, replica_auth_key)
        print(f"up in {time.monotonic() - started:.0f}s (state in {root})")
        demo = Demo(cluster)
        demo.kubectl("version")
        demo.kubectl("get", "nodes", "-o", "wide")
        statefulset_demo(demo)
        agentcluster_demo(demo)
        step("Starting the MCP gateway; a ServiceAccount token for the gateway's audience, allowed on "
             "agentclusters in default")
        gateway = gateway_process.start(root / "cluster", cluster.kubeconfig, postgres.url, redis.url,
                                        replica_auth_key)
        token = gateway_process.issue_caller_token(cluster.bin_dir / "kubectl", cluster.kubeconfig, "default")
        print(f"GATEWAY_URL={gateway.mcp_url}")
        asyncio.run(mcp_walkthrough(demo, gateway.mcp_url, token))
        step("Peak memory of what ran (VmHWM)")
        peaks = peak_memory({**cluster.pids(), "operator": operator.pid, "gateway": gateway.process.pid,
                             **replica_pids(demo)})
        for name, kib in peaks.items():
            print(f"  {name:<34} {kib / 1024:7.1f} MiB")
        print(f"  {'total':<34} {sum(peaks.values()) / 1024:7.1f} MiB")
        step("Metrics: a few real lines from a replica (with its cluster's token) and from the gateway")
        show_metrics(demo, gateway)
        step("Done")
        if args.keep:
            print(f"left running; KUBECONFIG={cluster.kubeconfig}")
            return 0
    finally:
        if not args.keep:
            if gateway is not None:
                gateway.stop()
            if operator is not None:
                operator.stop()
            cluster.stop()
            postgres.stop()
            redis.stop()
    return 0
