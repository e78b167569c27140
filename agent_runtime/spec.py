"""The runtime's reading of the AgentCluster spec stored in PostgreSQL, with `agent_api.models`.

The spec has one definition, the API's models: the runtime validates what the operator stored
with the same classes the admission webhook used, so a field the API accepts is a field the
runtime reads (a copy of the models here once drifted and ignored `http.method`). What is
runtime-only is kept to helpers that add no field: the schedules' change detector and the
lookups by name.

Strict about what it runs, and granular: one bad function or schedule never spoils the
others (each is validated alone and its error is kept where users can read it); an invalid
rest of the spec is refused whole, and the runtime keeps running the previous generation.
A field this runtime does not know is refused too, never skipped: an older runtime image
must not silently ignore a field a newer API added.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import pydantic
from pydantic import ConfigDict

from agent_api import cron, models

# The top-level spec fields, on the wire, as the API defines them.
SPEC_FIELDS = frozenset(f.alias or name for name, f in models.AgentClusterSpec.model_fields.items())
_CHANNELS = pydantic.TypeAdapter(list[models.Channel])
_MCP_SERVERS = pydantic.TypeAdapter(list[models.McpServer])
_WEBHOOKS = pydantic.TypeAdapter(list[models.Webhook])


class InvalidSpec(ValueError):
    """The stored spec as a whole cannot be run; the message says which fields and why."""


class Schedule(models.Schedule):
    """The API's schedule, frozen, with the runtime's change detector (no field of its own)."""

    model_config = ConfigDict(frozen=True)

    def definition_hash(self) -> str:
        """Changes when the user edits the schedule; resets failure counters and disable."""
        return self._definition_hash

    @functools.cached_property
    def _definition_hash(self) -> str:
        # Cached: the scheduler asks on every pass, for every schedule (the model is frozen).
        fields = self.model_dump(mode="json")
        # These two were floats in the runtime's former copy of the models; dumped as floats
        # the hash stays the one stored in schedule_lanes, so an upgrade is not an edit.
        fields["missed_fire_grace_seconds"] = float(fields["missed_fire_grace_seconds"])
        fields["failure_policy"]["backoff_seconds"] = float(fields["failure_policy"]["backoff_seconds"])
        canonical = json.dumps(fields, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class RuntimeSpec:
    generation: int
    limits: models.Limits
    functions: dict[str, models.Function]
    schedules: list[Schedule]
    # schedule name (or "#<index>" when it has none) -> readable error
    schedule_errors: dict[str, str] = field(default_factory=dict)
    function_errors: dict[str, str] = field(default_factory=dict)
    ai: models.AI | None = None
    channels: dict[str, models.Channel] = field(default_factory=dict)
    mcp_servers: list[models.McpServer] = field(default_factory=list)
    webhooks: dict[str, models.Webhook] = field(default_factory=dict)

    def schedule(self, name: str) -> Schedule | None:
        """By name, in constant time (asked once per completed fire)."""
        return self._schedules_by_name.get(name)

    @functools.cached_property
    def _schedules_by_name(self) -> dict[str, Schedule]:
        return {s.name: s for s in self.schedules}


def parse(generation: int, raw: dict[str, Any]) -> RuntimeSpec:
    """Parse the stored spec; a whole-spec error raises `InvalidSpec`, per-item errors are
    collected in `function_errors` and `schedule_errors`."""
    unknown = sorted(set(raw) - SPEC_FIELDS)
    if unknown:
        raise InvalidSpec(f"unknown spec field(s) {', '.join(unknown)}: this runtime image does not "
                          f"know them; run an image as new as the operator's (spec.image)")
    try:
        limits = models.Limits.model_validate(raw.get("limits") or {})
        ai = models.AI.model_validate(raw["ai"]) if raw.get("ai") is not None else None
        channels = _CHANNELS.validate_python(raw.get("channels") or [])
        mcp_servers = _MCP_SERVERS.validate_python(raw.get("mcpServers") or [])
        webhooks = _WEBHOOKS.validate_python(raw.get("webhooks") or [])
    except pydantic.ValidationError as error:
        raise InvalidSpec(readable(error)) from error
    functions: dict[str, models.Function] = {}
    function_errors: dict[str, str] = {}
    for index, item in enumerate(raw.get("functions") or []):
        name = str(item.get("name") or f"#{index}")
        try:
            functions[name] = models.Function.model_validate(item)
        except pydantic.ValidationError as error:
            function_errors[name] = readable(error)
    schedules: list[Schedule] = []
    schedule_errors: dict[str, str] = {}
    for index, item in enumerate(raw.get("schedules") or []):
        name = str(item.get("name") or f"#{index}")
        try:
            schedule = Schedule.model_validate(item)
            # The admission webhook checks this too; a spec written around it still gets words.
            cron.validate(schedule.cron, schedule.timezone)
        except pydantic.ValidationError as error:
            schedule_errors[name] = readable(error)
            continue
        except cron.CronError as error:
            schedule_errors[name] = str(error)
            continue
        if schedule.function not in functions:
            schedule_errors[name] = f"function {schedule.function!r} is not defined in spec.functions"
            continue
        schedules.append(schedule)
    return RuntimeSpec(generation, limits, functions, schedules, schedule_errors,
                       function_errors, ai, {channel.name: channel for channel in channels},
                       mcp_servers, {hook.name: hook for hook in webhooks})


def readable(error: pydantic.ValidationError) -> str:
    """`where: message` parts in the wire's (camelCase) field names."""
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
