"""Invalid AgentClusters and the message each one must be refused with.

One table serves two checks: `test_models.py` validates each manifest with the pydantic
models (the admission webhook's view) and `test_apiserver.py` submits it to a real
kube-apiserver with the generated CRD. `python` is a substring of the models' message,
`apiserver` a substring of kube-apiserver v1.34's answer (recorded from a real server);
`apiserver=None` marks a check only the admission webhook can make.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from agent_api import models

ECHO_FN: dict[str, Any] = {"name": "echo", "python": {"entrypoint": "agent_runtime.builtins:echo"}}
SECRET = {"name": "webhook-secret", "key": "token"}


def manifest(name: str = "valid", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "agentclusters.io/v1alpha1",
        "kind": "AgentCluster",
        "metadata": {"name": name},
        "spec": copy.deepcopy(spec),
    }


def schedule(**overrides: Any) -> dict[str, Any]:
    return {"name": "hourly", "function": "echo", "cron": "0 * * * *", **overrides}


def webhook(**overrides: Any) -> dict[str, Any]:
    return {"name": "github", "path": "/github", "function": "echo", "secretRef": SECRET, **overrides}


@dataclass(frozen=True)
class Invalid:
    id: str
    manifest: dict[str, Any]
    python: str
    apiserver: str | None


INVALID: list[Invalid] = [
    Invalid("replicas-negative", manifest(replicas=-1),
            "spec.replicas: Input should be greater than or equal to 0",
            "spec.replicas in body should be greater than or equal to 0"),
    Invalid("replicas-too-many", manifest(replicas=101),
            "spec.replicas: Input should be less than or equal to 100",
            "spec.replicas in body should be less than or equal to 100"),
    Invalid("replicas-not-a-number", manifest(replicas="three"),
            "spec.replicas: Input should be a valid integer",
            'spec.replicas in body must be of type integer: "string"'),
    Invalid("ai-unknown-provider", manifest(ai={"provider": "gemini", "model": "x"}),
            "spec.ai.provider: Input should be 'openai', 'anthropic' or 'echo'",
            'spec.ai.provider: Unsupported value: "gemini": supported values: "openai", '
            '"anthropic", "echo"'),
    Invalid("ai-openai-without-model", manifest(ai={"provider": "openai"}),
            models.AI_MODEL_MESSAGE, models.AI_MODEL_MESSAGE),
    Invalid("ai-anthropic-without-key",
            manifest(ai={"provider": "anthropic", "model": "claude-sonnet-4-5"}),
            models.AI_KEY_MESSAGE, models.AI_KEY_MESSAGE),
    Invalid("ai-inline-api-key",
            manifest(ai={"provider": "openai", "model": "gpt-4o-mini", "apiKey": "sk-123"}),
            "spec.ai.apiKey: Extra inputs are not permitted",
            'unknown field "spec.ai.apiKey"'),
    Invalid("ai-base-url-not-http",
            manifest(ai={"provider": "openai", "model": "m", "baseURL": "api.example.com"}),
            models.HTTP_URL_MESSAGE, "spec.ai.baseURL: Invalid value"),
    Invalid("function-name-uppercase",
            manifest(functions=[{**ECHO_FN, "name": "Scraping_Fetch"}]),
            "spec.functions[0].name: " + models.FUNCTION_NAME_MESSAGE,
            models.FUNCTION_NAME_MESSAGE),
    Invalid("function-without-kind", manifest(functions=[{"name": "echo"}]),
            models.ONE_FUNCTION_KIND_MESSAGE, models.ONE_FUNCTION_KIND_MESSAGE),
    Invalid("function-two-kinds",
            manifest(functions=[{**ECHO_FN, "http": {"url": "https://example.com/hook"}}]),
            models.ONE_FUNCTION_KIND_MESSAGE, models.ONE_FUNCTION_KIND_MESSAGE),
    Invalid("function-entrypoint-without-callable",
            manifest(functions=[{"name": "echo", "python": {"entrypoint": "agent_runtime.echo"}}]),
            "spec.functions[0].python.entrypoint: " + models.ENTRYPOINT_MESSAGE,
            models.ENTRYPOINT_MESSAGE),
    Invalid("function-http-ftp-url",
            manifest(functions=[{"name": "fetch", "http": {"url": "ftp://example.com/x"}}]),
            "spec.functions[0].http.url: " + models.HTTP_URL_MESSAGE, models.HTTP_URL_MESSAGE),
    Invalid("function-http-bad-method",
            manifest(functions=[{"name": "fetch",
                                 "http": {"url": "https://example.com", "method": "FETCH"}}]),
            "spec.functions[0].http.method: Input should be",
            'spec.functions[0].http.method: Unsupported value: "FETCH"'),
    Invalid("function-http-zero-timeout",
            manifest(functions=[{"name": "fetch",
                                 "http": {"url": "https://example.com", "timeoutSeconds": 0}}]),
            "spec.functions[0].http.timeoutSeconds: Input should be greater than or equal to 1",
            "spec.functions[0].http.timeoutSeconds in body should be greater than or equal to 1"),
    Invalid("function-http-inline-header",
            manifest(functions=[{"name": "fetch", "http": {
                "url": "https://example.com",
                "headers": [{"name": "Authorization", "value": "Bearer secret"}]}}]),
            "spec.functions[0].http.headers[0].value: Extra inputs are not permitted",
            'unknown field "spec.functions[0].http.headers[0].value"'),
    Invalid("function-names-duplicated", manifest(functions=[ECHO_FN, ECHO_FN]),
            "functions: duplicate name(s): echo",
            'spec.functions[1]: Duplicate value: {"name":"echo"}'),
    Invalid("too-many-functions",
            manifest(functions=[{**ECHO_FN, "name": f"f{i}"} for i in range(65)]),
            "spec.functions: List should have at most 64 items",
            "spec.functions: Too many: 65: must have at most 64 items"),
    Invalid("schedule-names-missing-function",
            manifest(functions=[ECHO_FN], schedules=[schedule(function="scraping.fetch")]),
            'every schedule must name a function defined in spec.functions: schedule "hourly" '
            'names function "scraping.fetch"',
            "spec.schedules: Invalid value: \"object\": every schedule must name a function "
            "defined in spec.functions"),
    Invalid("schedule-without-any-function", manifest(schedules=[schedule()]),
            "every schedule must name a function defined in spec.functions",
            "every schedule must name a function defined in spec.functions"),
    Invalid("schedule-names-duplicated",
            manifest(functions=[ECHO_FN], schedules=[schedule(), schedule()]),
            "schedules: duplicate name(s): hourly",
            'spec.schedules[1]: Duplicate value: {"name":"hourly"}'),
    Invalid("schedule-name-uppercase",
            manifest(functions=[ECHO_FN], schedules=[schedule(name="Hourly")]),
            "spec.schedules[0].name: " + models.DNS_LABEL_MESSAGE, models.DNS_LABEL_MESSAGE),
    Invalid("schedule-cron-two-fields",
            manifest(functions=[ECHO_FN], schedules=[schedule(cron="every minute")]),
            "spec.schedules[0].cron: " + models.CRON_SHAPE_MESSAGE, models.CRON_SHAPE_MESSAGE),
    Invalid("schedule-unknown-mode",
            manifest(functions=[ECHO_FN], schedules=[schedule(mode="all")]),
            "spec.schedules[0].mode: Input should be 'single' or 'cluster'",
            'spec.schedules[0].mode: Unsupported value: "all": supported values: "single", '
            '"cluster"'),
    Invalid("schedule-unknown-missed-fire-policy",
            manifest(functions=[ECHO_FN], schedules=[schedule(missedFirePolicy="always")]),
            "spec.schedules[0].missedFirePolicy: Input should be 'skip', 'runOnce' or 'backfill'",
            'spec.schedules[0].missedFirePolicy: Unsupported value: "always"'),
    Invalid("schedule-unknown-failure-action",
            manifest(functions=[ECHO_FN],
                     schedules=[schedule(failurePolicy={"action": "retry"})]),
            "spec.schedules[0].failurePolicy.action: Input should be",
            'spec.schedules[0].failurePolicy.action: Unsupported value: "retry"'),
    Invalid("schedule-unknown-timezone",
            manifest(functions=[ECHO_FN], schedules=[schedule(timezone="Mars/Olympus_Mons")]),
            'spec.schedules[0].timezone: unknown time zone "Mars/Olympus_Mons"', None),
    Invalid("schedule-payload-not-object",
            manifest(functions=[ECHO_FN], schedules=[schedule(payload="hello")]),
            "spec.schedules[0].payload: Input should be a valid dictionary",
            'spec.schedules[0].payload: Invalid value: "string": spec.schedules[0].payload in '
            "body must be of type object"),
    Invalid("webhook-names-missing-function",
            manifest(functions=[ECHO_FN], webhooks=[webhook(function="nope")]),
            'every webhook must name a function defined in spec.functions: webhook "github" '
            'names function "nope"',
            "every webhook must name a function defined in spec.functions"),
    Invalid("webhook-paths-duplicated",
            manifest(functions=[ECHO_FN], webhooks=[webhook(), webhook(name="gitlab")]),
            models.WEBHOOK_PATHS_MESSAGE, models.WEBHOOK_PATHS_MESSAGE),
    Invalid("webhook-path-relative",
            manifest(functions=[ECHO_FN], webhooks=[webhook(path="github")]),
            "spec.webhooks[0].path: " + models.WEBHOOK_PATH_MESSAGE, models.WEBHOOK_PATH_MESSAGE),
    Invalid("webhook-without-secret",
            manifest(functions=[ECHO_FN],
                     webhooks=[{k: v for k, v in webhook().items() if k != "secretRef"}]),
            "spec.webhooks[0].secretRef: Field required",
            "spec.webhooks[0].secretRef: Required value"),
    Invalid("channel-unknown-type",
            manifest(channels=[{"name": "ops", "type": "teams", "urlSecretRef": SECRET}]),
            "spec.channels[0].type: Input should be 'slack', 'discord' or 'webhook'",
            'spec.channels[0].type: Unsupported value: "teams"'),
    Invalid("channel-inline-url",
            manifest(channels=[{"name": "ops", "type": "slack",
                                "url": "https://hooks.slack.com/services/T0/B0/X"}]),
            "spec.channels[0].url: Extra inputs are not permitted",
            'unknown field "spec.channels[0].url"'),
    Invalid("mcp-server-url-without-scheme",
            manifest(mcpServers=[{"name": "search", "url": "localhost:8080/mcp"}]),
            "spec.mcpServers[0].url: " + models.HTTP_URL_MESSAGE, models.HTTP_URL_MESSAGE),
    Invalid("secret-name-invalid",
            manifest(channels=[{"name": "ops", "type": "slack",
                                "urlSecretRef": {"name": "My_Secret", "key": "url"}}]),
            "spec.channels[0].urlSecretRef.name: " + models.DNS_SUBDOMAIN_MESSAGE,
            models.DNS_SUBDOMAIN_MESSAGE),
    Invalid("limits-zero-concurrency", manifest(limits={"maxConcurrentRuns": 0}),
            "spec.limits.maxConcurrentRuns: Input should be greater than or equal to 1",
            "spec.limits.maxConcurrentRuns in body should be greater than or equal to 1"),
    Invalid("state-policy-unknown", manifest(statePolicy={"whenDeleted": "Archive"}),
            "spec.statePolicy.whenDeleted: Input should be 'Retain' or 'Delete'",
            'spec.statePolicy.whenDeleted: Unsupported value: "Archive"'),
    Invalid("image-empty", manifest(image=""),
            "spec.image: String should have at least 1 character",
            "spec.image in body should be at least 1 chars long"),
    Invalid("prompt-without-ai",
            manifest(functions=[{"name": "summarize", "prompt": {"template": "Sum up {text}"}}]),
            models.PROMPT_NEEDS_AI_MESSAGE, models.PROMPT_NEEDS_AI_MESSAGE),
    Invalid("prompt-unknown-tool",
            manifest(ai={"provider": "echo"},
                     functions=[{"name": "summarize",
                                 "prompt": {"template": "Sum up", "tools": ["web.search"]}}]),
            models.PROMPT_TOOLS_MESSAGE + ': function "summarize" lists tool "web.search"',
            models.PROMPT_TOOLS_MESSAGE),
    Invalid("cluster-name-too-long", manifest(name="a" * 42),
            models.CLUSTER_NAME_MESSAGE, models.CLUSTER_NAME_MESSAGE),
    Invalid("cluster-name-with-dot", manifest(name="my.agents"),
            models.CLUSTER_NAME_MESSAGE, models.CLUSTER_NAME_MESSAGE),
    Invalid("max-unavailable-zero", manifest(disruption={"maxUnavailable": 0}),
            models.MAX_UNAVAILABLE_MESSAGE, models.MAX_UNAVAILABLE_MESSAGE),
    Invalid("max-unavailable-bad-percentage", manifest(disruption={"maxUnavailable": "150%"}),
            models.MAX_UNAVAILABLE_MESSAGE, models.MAX_UNAVAILABLE_MESSAGE),
    Invalid("image-pull-secret-duplicate", manifest(imagePullSecrets=[{"name": "reg"}, {"name": "reg"}]),
            "imagePullSecrets: duplicate name(s): reg", "spec.imagePullSecrets[1]: Duplicate value"),
]

VALID: list[tuple[str, dict[str, Any]]] = [
    ("empty-spec", manifest()),
    ("scale-to-zero", manifest(replicas=0)),
    ("max-replicas", manifest(replicas=100)),
    ("longest-cluster-name", manifest(name="a" * 41)),
    ("everything", manifest(
        replicas=3,
        ai={"provider": "openai", "model": "gpt-4o-mini", "baseURL": "http://127.0.0.1:11434/v1",
            "apiKeySecretRef": {"name": "openai", "key": "api-key"},
            "systemPrompt": "You are helpful."},
        functions=[
            {"name": "scraping.fetch-mentions", "http": {
                "url": "https://example.com/mentions", "method": "GET", "timeoutSeconds": 10,
                "retries": 2,
                "headers": [{"name": "Authorization",
                             "secretKeyRef": {"name": "scraper", "key": "token"}}]}},
            ECHO_FN,
            {"name": "summarize", "prompt": {"template": "Summarize {text}",
                                             "tools": ["scraping.fetch-mentions"]}},
        ],
        schedules=[
            schedule(name="mentions", function="scraping.fetch-mentions", cron="*/5 * * * * *",
                     timezone="Europe/Paris", mode="cluster", missedFirePolicy="backfill",
                     backfillLimit=5, failurePolicy={"action": "disable",
                                                     "maxConsecutiveFailures": 5},
                     enabled=False, allowOverlap=True, payload={"query": "agent clusters",
                                                                "nested": {"n": [1, 2]}}),
        ],
        webhooks=[webhook(function="summarize", synchronous=True)],
        channels=[{"name": "ops", "type": "slack", "urlSecretRef": {"name": "slack", "key": "url"}}],
        mcpServers=[{"name": "search", "url": "https://mcp.example.com/mcp",
                     "headersSecretRef": {"name": "search-headers"}}],
        limits={"maxConcurrentRuns": 8, "runTimeoutSeconds": 60, "maxIterations": 5,
                "maxTokens": 2000, "maxWallClockSeconds": 120, "maxFunctionCalls": 4},
        image="ghcr.io/example/agent:1.2.3",
        statePolicy={"whenDeleted": "Delete"},
    )),
]
