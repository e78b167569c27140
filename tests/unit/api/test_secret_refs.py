"""agent_api.secret_refs: every Secret reference of a spec, which ones a change adds (the ones
its author must be allowed to get), and the refusal's words."""

from __future__ import annotations

from agent_api import models, secret_refs

AI = {"provider": "openai", "model": "m", "baseURL": "https://llm.example.com/v1",
      "apiKeySecretRef": {"name": "llm", "key": "api-key"}}
FULL = {
    "ai": AI,
    "functions": [
        {"name": "echo", "python": {"entrypoint": "agent_runtime.builtins:echo"}},
        {"name": "call", "http": {"url": "https://api.example.com/x", "headers": [
            {"name": "Authorization", "secretKeyRef": {"name": "api-token", "key": "token"}}]}},
    ],
    "webhooks": [{"name": "gh", "path": "/gh", "function": "echo", "secretRef": {"name": "hook", "key": "k"}}],
    "channels": [{"name": "ops", "type": "slack", "urlSecretRef": {"name": "slack", "key": "url"}}],
    "mcpServers": [{"name": "docs", "url": "https://mcp.example.com/mcp", "headersSecretRef": {"name": "docs-mcp"}},
                   {"name": "open", "url": "https://open.example.com/mcp"}],
}


def test_every_reference_is_found_with_its_field_and_use() -> None:
    found = secret_refs.uses(models.AgentClusterSpec.model_validate(FULL))
    assert [(u.secret, u.key, u.field, u.use) for u in found] == [
        ("llm", "api-key", "spec.ai.apiKeySecretRef", "sent to https://llm.example.com/v1"),
        ("api-token", "token", "spec.functions[1].http.headers[0].secretKeyRef", "sent to https://api.example.com/x"),
        ("hook", "k", "spec.webhooks[0].secretRef", "used to check webhook signatures"),
        ("slack", "url", "spec.channels[0].urlSecretRef", "posted to as a channel URL"),
        ("docs-mcp", None, "spec.mcpServers[0].headersSecretRef",
         "every key sent as a header to https://mcp.example.com/mcp"),
    ]


def test_a_create_adds_every_reference() -> None:
    assert len(secret_refs.added(None, FULL)) == 5


def test_editing_other_fields_adds_nothing() -> None:
    edited = {**FULL, "replicas": 3, "ai": {**AI, "model": "other", "systemPrompt": "hi"},
              "channels": [{"name": "alerts", "type": "discord", "urlSecretRef": {"name": "slack", "key": "url"}}],
              "limits": {"maxConcurrentRuns": 2}}
    assert secret_refs.added(FULL, edited) == []


def test_a_new_destination_key_or_secret_counts_as_new() -> None:
    assert [u.field for u in secret_refs.added(FULL, {**FULL, "ai": {**AI, "baseURL": "https://evil.example"}})] == [
        "spec.ai.apiKeySecretRef"]
    assert [u.field for u in secret_refs.added(FULL, {**FULL, "ai": {**AI, "apiKeySecretRef": {
        "name": "llm", "key": "other-key"}}})] == ["spec.ai.apiKeySecretRef"]
    moved = {**FULL, "mcpServers": [{"name": "docs", "url": "https://evil.example/mcp",
                                     "headersSecretRef": {"name": "docs-mcp"}}]}
    assert [u.field for u in secret_refs.added(FULL, moved)] == ["spec.mcpServers[0].headersSecretRef"]


def test_an_old_spec_the_models_refuse_counts_as_having_no_reference() -> None:
    assert len(secret_refs.added({"replicas": "many", **FULL}, FULL)) == 5


def test_refusal_names_each_secret_field_user_and_grant() -> None:
    uses = [*secret_refs.added(None, FULL)[:2], secret_refs.SecretUse("llm", "api-key", "spec.x", "sent to y")]
    assert secret_refs.refusal("system:serviceaccount:team-a:bot", "team-a", uses) == (
        'forbidden: user "system:serviceaccount:team-a:bot" may not get Secret "llm" in namespace "team-a", which '
        "this change would newly reference at spec.ai.apiKeySecretRef (key 'api-key', sent to "
        "https://llm.example.com/v1) and spec.x (key 'api-key', sent to y); user "
        '"system:serviceaccount:team-a:bot" may not get Secret "api-token" in namespace "team-a", which this change '
        "would newly reference at spec.functions[1].http.headers[0].secretKeyRef (key 'token', sent to "
        "https://api.example.com/x). An AgentCluster may only reference Secrets its author may read (its replicas "
        "receive their values). To allow it, grant get on them, e.g. kubectl -n team-a create role "
        "read-agent-secrets --verb=get --resource=secrets --resource-name=llm --resource-name=api-token && "
        "kubectl -n team-a create rolebinding read-agent-secrets --role=read-agent-secrets "
        "--serviceaccount=team-a:bot; or have someone who may read them make this change")


def test_refusal_quotes_a_user_name_for_the_shell() -> None:
    message = secret_refs.refusal("Jane Doe", "ns", secret_refs.added(None, {"ai": AI}))
    assert "--user='Jane Doe'" in message
