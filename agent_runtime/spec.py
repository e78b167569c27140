"""The runtime's own reading of the AgentCluster spec stored in PostgreSQL.

Tolerant of fields it does not know (other issues add them); strict about what it runs. One
bad schedule never spoils the others: each is validated alone and its error is kept for the
schedule's lane, where users can read it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from agent_api import cron


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, populate_by_name=True,
                              frozen=True)


class HttpFunction(_Model):
    url: str
    timeout_seconds: float = Field(30.0, gt=0)
    retries: int = Field(0, ge=0, le=10)
    headers: dict[str, str] = Field(default_factory=dict)


class PythonFunction(_Model):
    entrypoint: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class PromptFunction(_Model):
    template: str = Field(min_length=1)
    tools: list[str] = Field(default_factory=list)


class FunctionSpec(_Model):
    name: str
    http: HttpFunction | None = None
    python: PythonFunction | None = None
    prompt: PromptFunction | None = None


class SecretKeyRef(_Model):
    name: str
    key: str


class AI(_Model):
    provider: Literal["openai", "anthropic", "echo"]
    model: str | None = None
    base_url: str | None = Field(None, alias="baseURL")
    api_key_secret_ref: SecretKeyRef | None = None
    system_prompt: str | None = None
    allow_model_to_set_system_prompt: bool = False


class Channel(_Model):
    name: str = Field(min_length=1)
    type: Literal["slack", "discord", "webhook"]


class McpServer(_Model):
    name: str = Field(min_length=1)
    url: str


class Webhook(_Model):
    """What the replica needs of a webhook to verify and run a delivery (the Secret's value
    comes from the environment, `agent_api.secret_env.webhook_secret`)."""

    name: str = Field(min_length=1)
    path: str = Field(pattern=r"^/")
    function: str
    synchronous: bool = False


class FailurePolicy(_Model):
    action: Literal["continue", "disable", "backoff"] = "continue"
    max_consecutive_failures: int = Field(3, ge=1)
    backoff_seconds: float = Field(30.0, gt=0)


class ScheduleSpec(_Model):
    name: str = Field(min_length=1)
    function: str
    cron: str
    timezone: str = "UTC"
    mode: Literal["single", "cluster"] = "single"
    enabled: bool = True
    missed_fire_policy: Literal["skip", "runOnce", "backfill"] = "skip"
    backfill_limit: int = Field(10, ge=1, le=1000)
    # A fire older than this when first planned counts as missed.
    missed_fire_grace_seconds: float = Field(10.0, ge=0)
    failure_policy: FailurePolicy = Field(default_factory=FailurePolicy)
    allow_overlap: bool = False
    payload: dict[str, Any] = Field(default_factory=dict)

    @pydantic.model_validator(mode="after")
    def _cron_and_zone(self) -> ScheduleSpec:
        cron.validate(self.cron, self.timezone)
        return self

    def definition_hash(self) -> str:
        """Changes when the user edits the schedule; resets failure counters and disable."""
        return self._definition_hash

    @functools.cached_property
    def _definition_hash(self) -> str:
        # Cached: the scheduler asks on every pass, for every schedule (the model is frozen).
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


class Limits(_Model):
    max_concurrent_runs: int = Field(4, ge=1)
    run_timeout_seconds: float = Field(300.0, gt=0)
    lease_seconds: float = Field(30.0, gt=0)
    max_attempts: int = Field(3, ge=1)
    state_max_value_bytes: int = Field(64 * 1024, ge=1)
    state_max_total_bytes: int = Field(1024 * 1024, ge=1)
    history_retention_hours: float = Field(7 * 24, gt=0)
    # The agent loop (agent_runtime.ai.loop) and chat memory.
    max_iterations: int = Field(10, ge=1)
    max_tokens: int = Field(100_000, ge=1)
    max_wall_clock_seconds: float = Field(600.0, gt=0)
    max_function_calls: int = Field(20, ge=0)
    memory_max_tokens: int = Field(8000, ge=1)


class _Envelope(_Model):
    replicas: int = 0
    functions: list[dict[str, Any]] = Field(default_factory=list)
    schedules: list[dict[str, Any]] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)
    ai: AI | None = None
    channels: list[Channel] = Field(default_factory=list)
    mcp_servers: list[McpServer] = Field(default_factory=list)
    webhooks: list[Webhook] = Field(default_factory=list)


@dataclass(frozen=True)
class RuntimeSpec:
    generation: int
    limits: Limits
    functions: dict[str, FunctionSpec]
    schedules: list[ScheduleSpec]
    # schedule name (or "#<index>" when it has none) -> readable error
    schedule_errors: dict[str, str] = field(default_factory=dict)
    function_errors: dict[str, str] = field(default_factory=dict)
    ai: AI | None = None
    channels: dict[str, Channel] = field(default_factory=dict)
    mcp_servers: list[McpServer] = field(default_factory=list)
    webhooks: dict[str, Webhook] = field(default_factory=dict)

    def schedule(self, name: str) -> ScheduleSpec | None:
        """By name, in constant time (asked once per completed fire)."""
        return self._schedules_by_name.get(name)

    @functools.cached_property
    def _schedules_by_name(self) -> dict[str, ScheduleSpec]:
        return {s.name: s for s in self.schedules}


def parse(generation: int, raw: dict[str, Any]) -> RuntimeSpec:
    """Parse the stored spec; a whole-spec error raises, per-item errors are collected."""
    envelope = _Envelope.model_validate(raw)
    functions: dict[str, FunctionSpec] = {}
    function_errors: dict[str, str] = {}
    for index, item in enumerate(envelope.functions):
        name = str(item.get("name") or f"#{index}")
        try:
            functions[name] = FunctionSpec.model_validate(item)
        except pydantic.ValidationError as error:
            function_errors[name] = _readable(error)
    schedules: list[ScheduleSpec] = []
    schedule_errors: dict[str, str] = {}
    for index, item in enumerate(envelope.schedules):
        name = str(item.get("name") or f"#{index}")
        try:
            schedule = ScheduleSpec.model_validate(item)
        except pydantic.ValidationError as error:
            schedule_errors[name] = _readable(error)
            continue
        if schedule.function not in functions:
            schedule_errors[name] = f"function {schedule.function!r} is not defined in spec.functions"
            continue
        schedules.append(schedule)
    return RuntimeSpec(generation, envelope.limits, functions, schedules, schedule_errors,
                       function_errors, envelope.ai,
                       {channel.name: channel for channel in envelope.channels},
                       envelope.mcp_servers, {hook.name: hook for hook in envelope.webhooks})


def _readable(error: pydantic.ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)
