"""Functions every image has, usable as `python: {entrypoint: agent_runtime.builtins:<name>}`.

Handy for demos, smoke tests and benchmarks: they exercise the whole path (schedule, claim,
run, history) without reaching any outside service.
"""

from __future__ import annotations

from typing import Any

from agent_runtime.functions import RunContext


def echo(context: RunContext) -> dict[str, Any]:
    """Returns the payload with the replica and trigger that ran it."""
    return {
        "echo": context.payload,
        "replica": context.replica,
        "trigger": context.trigger,
        "schedule": context.schedule,
        "idempotency_key": context.idempotency_key,
    }
