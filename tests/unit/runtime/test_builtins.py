"""agent_runtime.builtins: the functions every image ships."""

from agent_runtime import builtins, functions


def test_echo_returns_payload_and_who_ran_it():
    context = functions.RunContext(
        agent="agent", namespace="ns", replica="daring-duck", function="echo", trigger="schedule",
        schedule="hourly", fire_time="2026-01-01T00:00:00+00:00", attempt=1,
        idempotency_key="hourly:2026-01-01T00:00:00+00:00", payload={"x": 1}, state={},
    )

    result = builtins.echo(context)

    assert result["echo"] == {"x": 1}
    assert result["replica"] == "daring-duck"
    assert result["idempotency_key"] == "hourly:2026-01-01T00:00:00+00:00"


def test_echo_is_resolvable_as_an_entrypoint():
    assert functions.resolve("agent_runtime.builtins:echo") is builtins.echo
