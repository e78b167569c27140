"""What the tools answer: pydantic models, so MCP clients get structured output with a schema."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Member(BaseModel):
    name: str
    ordinal: int
    phase: str | None = None
    ready: bool = False


class ArchivedMember(BaseModel):
    name: str
    ordinal: int
    archived_at: str | None = None


class ArchivedReplica(BaseModel):
    name: str
    ordinal: int
    registered_at: str | None = None
    archived_at: str


class ArchivedReplicaPage(BaseModel):
    agent: str
    namespace: str
    total: int = Field(description="archived replicas of this agent in all")
    replicas: list[ArchivedReplica] = Field(description="newest (highest ordinal) first")
    next_cursor: str | None = Field(
        description="pass as cursor for the next page; None when this page is the last")


class Condition(BaseModel):
    type: str
    status: str
    reason: str | None = None
    message: str | None = None


class ScheduleInfo(BaseModel):
    name: str
    function: str
    cron: str
    timezone: str = "UTC"
    mode: str = "single"
    enabled: bool = True


class AgentSummary(BaseModel):
    name: str
    namespace: str
    replicas: int
    ready_replicas: int
    members: list[str]


class AgentList(BaseModel):
    namespace: str
    agents: list[AgentSummary]


class AgentDescription(BaseModel):
    name: str
    namespace: str
    replicas: int = Field(description="desired replicas (spec)")
    ready_replicas: int
    members: list[Member]
    archived: list[ArchivedMember] = Field(
        description="the newest archived replicas (the status keeps 20); list_archived_replicas has all")
    archived_count: int = Field(description="how many replicas of this agent are archived in all")
    schedules: list[ScheduleInfo]
    functions: list[str]
    webhooks: list[dict[str, Any]]
    channels: list[str]
    mcp_servers: list[str]
    ai: dict[str, Any] | None
    limits: dict[str, Any]
    conditions: list[Condition]


class Changed(BaseModel):
    agent: str
    namespace: str
    message: str
    generation: int | None = None


class ScaleResult(BaseModel):
    agent: str
    replicas: int
    members: list[str] = Field(description="names of the live replicas, by ordinal")


class ScheduleList(BaseModel):
    agent: str
    schedules: list[ScheduleInfo]


class ChatReply(BaseModel):
    reply: str
    replica: str
    conversation_id: str


class StateValue(BaseModel):
    agent: str
    replica: str | None = Field(description="None for the cluster-shared scope")
    key: str
    found: bool
    value: Any = None
    archived: bool = False


class StateKey(BaseModel):
    key: str
    size_bytes: int
    updated_at: str | None = None


class StateKeys(BaseModel):
    agent: str
    replica: str | None
    archived: bool = False
    keys: list[StateKey]


class RunInfo(BaseModel):
    id: int
    replica: str
    trigger: str
    function: str
    status: str
    schedule: str | None = None
    fire_time: str | None = None
    attempt: int = 1
    started_at: str | None = None
    finished_at: str | None = None
    error: str | None = None


class RunList(BaseModel):
    agent: str
    replica: str | None
    runs: list[RunInfo]


class RunStarted(BaseModel):
    agent: str
    run_id: int = Field(description="read the run with get_run")
    replica: str = Field(description="the replica running it")
    function: str
    status: str = Field(description="running: the run has started; get_run shows how it ends")


class RunDetail(RunInfo):
    agent: str
    output: Any = Field(default=None, description="what the function returned (a prompt function: the loop's "
                                                  "record, reply included)")
    stop_reason: str | None = Field(default=None, description="why a prompt function's agent loop ended; None "
                                                              "for python and http functions")
