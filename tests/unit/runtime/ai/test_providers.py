"""Providers through the official SDKs over HTTP against the scripted local server."""

from __future__ import annotations

import pytest

from agent_runtime.ai import providers
from tests.support.ai_provider import Reply, ScriptedProvider

KEY = "sk-test-provider-key-0123456789"
TOOL = providers.ToolSpec("state_get", "read", {"type": "object",
                                                "properties": {"key": {"type": "string"}}})


@pytest.fixture
async def server():
    scripted = await ScriptedProvider(expected_key=KEY).start()
    yield scripted
    await scripted.stop()


def _provider(server: ScriptedProvider, api: str, key: str = KEY, **extra) -> providers.Provider:
    base = server.openai_base_url if api == "openai" else server.url
    settings = {"timeout_seconds": 5.0, "max_retries": 2, **extra}
    return providers.build(providers.Settings(api, "scripted-model", base, key, **settings))


@pytest.mark.parametrize("api", ["openai", "anthropic"])
async def test_text_tool_calls_usage_and_transcript_round_trip(server, api):
    server.script = [Reply(tool_calls=[("state_get", {"key": "a"})], input_tokens=11, output_tokens=3),
                     Reply(text="the value is 1", input_tokens=20, output_tokens=4)]
    provider = _provider(server, api)
    first = await provider.complete("be brief", [providers.Message("user", "what is a?")], [TOOL], 100)
    assert first.tool_calls[0].name == "state_get" and first.tool_calls[0].arguments == {"key": "a"}
    assert (first.input_tokens, first.output_tokens) == (11, 3)
    transcript = [providers.Message("user", "what is a?"),
                  providers.Message("assistant", "", first.tool_calls),
                  providers.Message("tool", '{"value": 1}', tool_call_id=first.tool_calls[0].id)]
    second = await provider.complete("be brief", transcript, [TOOL], 100)
    assert second.text == "the value is 1" and not second.tool_calls
    sent = server.requests[-1]
    assert sent.system() == "be brief"
    assert sent.tool_results() == 1
    assert sent.body["max_tokens"] == 100
    assert sent.body["model"] == "scripted-model"


@pytest.mark.parametrize("api", ["openai", "anthropic"])
async def test_bad_key_is_an_auth_error_with_the_providers_message_and_no_retry(server, api):
    provider = _provider(server, api, key="sk-wrong-key-abcdef")
    with pytest.raises(providers.ProviderError) as caught:
        await provider.complete(None, [providers.Message("user", "hi")], [], 10)
    assert caught.value.kind == "auth" and caught.value.status == 401
    assert "Incorrect API key provided" in str(caught.value)
    assert len(server.requests) == 1  # a 401 is never retried


@pytest.mark.parametrize("api", ["openai", "anthropic"])
async def test_rate_limit_is_retried_with_backoff_then_succeeds(server, api):
    server.script = [Reply(status=429, error="slow down", headers={"retry-after-ms": "20"}),
                     Reply(text="fine")]
    completion = await _provider(server, api).complete(None, [providers.Message("user", "hi")], [], 10)
    assert completion.text == "fine" and len(server.requests) == 2


@pytest.mark.parametrize("api", ["openai", "anthropic"])
async def test_rate_limit_past_retries_is_a_rate_limit_error(server, api):
    server.script = [Reply(status=429, error="quota exhausted for this key",
                           headers={"retry-after-ms": "10"})] * 3
    with pytest.raises(providers.ProviderError) as caught:
        await _provider(server, api).complete(None, [providers.Message("user", "hi")], [], 10)
    assert caught.value.kind == "rate_limit" and "quota exhausted for this key" in str(caught.value)
    assert len(server.requests) == 3  # the first try and two retries


@pytest.mark.parametrize("api", ["openai", "anthropic"])
async def test_server_errors_are_retried(server, api):
    server.script = [Reply(status=500, error="boom", headers={"retry-after-ms": "10"}),
                     Reply(text="recovered")]
    completion = await _provider(server, api).complete(None, [providers.Message("user", "x")], [], 10)
    assert completion.text == "recovered" and len(server.requests) == 2


@pytest.mark.parametrize("api", ["openai", "anthropic"])
async def test_timeout_is_a_timeout_error(server, api):
    server.script = [Reply(text="late", delay=1.0)] * 2
    provider = _provider(server, api, timeout_seconds=0.3, max_retries=1)
    with pytest.raises(providers.ProviderError) as caught:
        await provider.complete(None, [providers.Message("user", "x")], [], 10)
    assert caught.value.kind == "timeout" and "timed out" in str(caught.value)


@pytest.mark.parametrize("api", ["openai", "anthropic"])
async def test_malformed_tool_call_is_a_clear_error(server, api):
    server.script = [Reply(tool_calls=[("state_get", "{not json")])]
    with pytest.raises(providers.ProviderError) as caught:
        await _provider(server, api).complete(None, [providers.Message("user", "x")], [TOOL], 10)
    assert caught.value.kind == "malformed_tool_call"
    assert "state_get" in str(caught.value) and "{not json" in str(caught.value)


async def test_echo_engine_says_how_many_earlier_turns_of_the_conversation_it_was_given():
    echo = providers.build(providers.Settings("echo"))
    history = [providers.Message("user", "my name is Ada"), providers.Message("assistant", "echo: my name is Ada"),
               providers.Message("user", "I like owls"), providers.Message("assistant", "echo: I like owls")]
    answer = await echo.complete(None, [*history, providers.Message("user", "who am I?")], [], 10)
    assert answer.text == 'echo: who am I? [2 earlier turns of this conversation; you last said: "I like owls"]'
    one = await echo.complete(None, [*history[:2], providers.Message("user", "again")], [], 10)
    assert one.text == 'echo: again [1 earlier turn of this conversation; you last said: "my name is Ada"]'


async def test_echo_engine_shortens_a_long_remembered_message():
    echo = providers.build(providers.Settings("echo"))
    long = "x" * 500
    answer = await echo.complete(None, [providers.Message("user", long), providers.Message("assistant", "ok"),
                                        providers.Message("user", "and?")], [], 10)
    assert answer.text == f'echo: and? [1 earlier turn of this conversation; you last said: "{"x" * 79}…"]'


async def test_echo_engine_echoes_and_scripts_tool_calls():
    echo = providers.build(providers.Settings("echo"))
    plain = await echo.complete(None, [providers.Message("user", "hello")], [], 10)
    assert plain.text == "echo: hello [no earlier turns of this conversation]" and not plain.tool_calls
    asked = await echo.complete(None, [providers.Message(
        "user", 'look it up\n/call state_get {"key": "a"}\n/call state_list')], [], 10)
    assert [(c.name, c.arguments) for c in asked.tool_calls] == [("state_get", {"key": "a"}),
                                                                 ("state_list", {})]
    answered = await echo.complete(None, [
        providers.Message("user", "/call state_get {}"),
        providers.Message("assistant", "", asked.tool_calls[:1]),
        providers.Message("tool", "42", tool_call_id=asked.tool_calls[0].id)], [], 10)
    assert answered.text == "echo: tool results: 42" and not answered.tool_calls
