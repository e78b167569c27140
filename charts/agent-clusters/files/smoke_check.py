"""`helm test`: is the installed release serving? Standard library only (it runs in the image).

  --gateway-url URL   the MCP gateway: GET /healthz answers {"status": "ok"} (served once it has
                      reached the database), and an unauthenticated POST /mcp is refused with
                      401 (bearer-token authentication is on).
  --webhook-url URL   the operator's admission webhook: an AdmissionReview for an AgentCluster
                      whose schedule has an invalid cron expression is refused with a message
                      naming the cron field (the operator is up, has reached the database and the
                      API server, and validates). TLS is not verified: the CA lives in the
                      ValidatingWebhookConfiguration, which the test pod has no right to read.
  --namespace NS      the namespace the reviewed AgentCluster claims to be in (it must exist: the
                      webhook reads its tier label).

Each check prints one line; the exit status is 1 if any failed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable

TIMEOUT_SECONDS = 10
INVALID_CRON = "61 * * * *"


def check_gateway(base_url: str) -> None:
    with urllib.request.urlopen(f"{base_url}/healthz", timeout=TIMEOUT_SECONDS) as response:
        body = json.loads(response.read())
    if body != {"status": "ok"}:
        raise AssertionError(f"GET {base_url}/healthz answered {body!r}, expected {{'status': 'ok'}}")
    request = urllib.request.Request(
        f"{base_url}/mcp", method="POST", data=b"{}",
        headers={"Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    if status != 401:
        raise AssertionError(f"POST {base_url}/mcp without a token answered {status}, expected 401")


def admission_review(namespace: str) -> dict[str, object]:
    """An AdmissionReview as the API server sends it for `kubectl create` of a bad AgentCluster."""
    kind = {"group": "agentclusters.io", "version": "v1alpha1", "kind": "AgentCluster"}
    resource = {"group": "agentclusters.io", "version": "v1alpha1", "resource": "agentclusters"}
    name = "helm-test-smoke-check"
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": kind, "resource": resource, "requestKind": kind, "requestResource": resource,
            "name": name, "namespace": namespace, "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:helm-test:smoke-check", "groups": []},
            "object": {
                "apiVersion": "agentclusters.io/v1alpha1", "kind": "AgentCluster",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "replicas": 1,
                    "functions": [{"name": "smoke.check", "http": {"url": "http://127.0.0.1:1/"}}],
                    "schedules": [{"name": "bad", "function": "smoke.check", "cron": INVALID_CRON}],
                },
            },
            "oldObject": None, "dryRun": True,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def check_webhook(base_url: str, namespace: str) -> None:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(
        f"{base_url}/spec", method="POST", data=json.dumps(admission_review(namespace)).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS, context=context) as response:
        answer = json.loads(response.read())["response"]
    message = (answer.get("status") or {}).get("message", "")
    if answer.get("allowed") is not False or "cron" not in message:
        raise AssertionError(f"the webhook answered {answer!r}; expected a refusal naming the invalid cron")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gateway-url", help="e.g. http://agent-clusters-gateway.agent-clusters.svc:8090")
    parser.add_argument("--webhook-url", help="e.g. https://agent-clusters-webhook.agent-clusters.svc:9443")
    parser.add_argument("--namespace", help="an existing namespace (with --webhook-url)")
    args = parser.parse_args(argv)
    if not args.gateway_url and not args.webhook_url:
        parser.error("nothing to check: give --gateway-url, --webhook-url or both")
    if args.webhook_url and not args.namespace:
        parser.error("--webhook-url needs --namespace (an existing namespace)")
    checks: list[tuple[str, Callable[[], None]]] = []
    if args.gateway_url:
        url = args.gateway_url.rstrip("/")
        checks.append((f"gateway {url}: /healthz ok, /mcp refuses a caller without a token",
                       lambda: check_gateway(url)))
    if args.webhook_url:
        hook = args.webhook_url.rstrip("/")
        checks.append((f"operator webhook {hook}: refuses an invalid cron expression",
                       lambda: check_webhook(hook, args.namespace)))
    failed = 0
    for what, check in checks:
        try:
            check()
        except Exception as error:  # every failure is reported, then the next check runs
            failed += 1
            print(f"FAIL {what}: {type(error).__name__}: {error}", flush=True)
        else:
            print(f"ok   {what}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
