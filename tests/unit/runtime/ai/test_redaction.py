"""Secret values are scrubbed from any text, in the forms they take once quoted or encoded."""

from __future__ import annotations

import json
import urllib.parse

from agent_runtime.ai import redaction


def test_registered_values_are_scrubbed_in_raw_json_and_url_encoded_forms():
    secret = 'sk-live-"quoted"/value+1'
    redaction.register(secret, "AGENT_AI_API_KEY")
    for text in (f"key={secret}", json.dumps({"k": secret}), urllib.parse.quote(secret, safe="")):
        assert secret not in redaction.scrub(text)
        assert "[redacted:AGENT_AI_API_KEY]" in redaction.scrub(text)


def test_webhook_url_path_is_scrubbed_even_without_the_host():
    url = "https://hooks.example.test/services/T000/B000/XXXXSECRETXXXX"
    redaction.register(url, "AGENT_CHANNEL_ALERTS_URL")
    assert "XXXXSECRETXXXX" not in redaction.scrub("POST /services/T000/B000/XXXXSECRETXXXX: 404")
    assert redaction.scrub(f"cannot connect to {url}") == (
        "cannot connect to [redacted:AGENT_CHANNEL_ALERTS_URL]")


def test_environment_registration_takes_only_the_secret_contract():
    redaction.register_environment({"AGENT_MCP_DOCS_HEADER_Authorization": "Bearer mcp-token-123",
                                    "AGENT_CLUSTER": "scraper-cluster-name"})
    assert redaction.scrub("Bearer mcp-token-123") == "[redacted:AGENT_MCP_DOCS_HEADER_Authorization]"
    assert redaction.scrub("scraper-cluster-name") == "scraper-cluster-name"


def test_short_values_are_not_registered_and_json_is_scrubbed_deeply():
    redaction.register("abc", "X")
    assert redaction.scrub("abc") == "abc"
    redaction.register("deep-secret-value", "Y")
    assert redaction.scrub_json({"a": ["x deep-secret-value"], "deep-secret-value": 1}) == {
        "a": ["x [redacted:Y]"], "[redacted:Y]": 1}
