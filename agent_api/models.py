"""The AgentCluster resource as pydantic models: the single definition of the API.

Everything else derives from these classes: `agent_api.crd` turns them into the CRD's
OpenAPI schema and CEL rules, the operator's admission webhook validates with them, the
operator writes the validated spec into PostgreSQL and the runtime reads it back with them.

Field names are snake_case in Python and camelCase on the wire (`alias_generator=to_camel`,
`populate_by_name=True`). Dump with `model_dump(by_alias=True, exclude_none=True)`.

Every CEL rule in the CRD has a Python twin here that raises the same message, so a
manifest is refused with the same words by the API server, by the admission webhook and
by a unit test. Checks the API server cannot make (time-zone names) live only here.
Secrets are only ever referenced (`SecretKeyRef`, `SecretRef`), never inlined.
"""

from __future__ import annotations

import re
import zoneinfo
from collections import Counter
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from agent_api import constants

# --- Sizes (they bound the cost of the CRD's CEL rules) ------------------------------
MAX_FUNCTIONS = 64
MAX_SCHEDULES = 64
MAX_WEBHOOKS = 32
MAX_CHANNELS = 16
MAX_MCP_SERVERS = 16
MAX_HEADERS = 16
MAX_PROMPT_TOOLS = 32
MAX_STATE_KEYS = 64
MAX_IMAGE_PULL_SECRETS = 16
# The replica state an http function's JSON body carries (all of it, or its `stateKeys`); more
# is refused at run time with a message naming `stateKeys`. Equal to the default
# limits.stateMaxTotalBytes, so with default limits a replica's whole state always fits.
HTTP_STATE_MAX_BYTES = 1024 * 1024
MAX_TEXT = 32768  # prompts and templates; the whole object must stay far below etcd's 1.5 MB

# --- Shapes, each with the message both the API server and Python give ---------------
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_LABEL_MESSAGE = (
    "must be a DNS label: lowercase letters, digits and '-', starting and ending with a "
    "letter or digit"
)
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
DNS_SUBDOMAIN_MESSAGE = (
    "must be a DNS subdomain: lowercase letters, digits, '-' and '.', starting and ending "
    "with a letter or digit"
)
FUNCTION_NAME = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$"
FUNCTION_NAME_MESSAGE = (
    "must be lowercase words of letters, digits and '-' joined by '.', "
    "e.g. scraping.fetch-mentions"
)
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"
SECRET_KEY_MESSAGE = "must consist of letters, digits, '-', '_' or '.'"
HEADER_NAME = r"^[A-Za-z0-9-]+$"
HEADER_NAME_MESSAGE = "must consist of letters, digits and '-'"
ENTRYPOINT = (
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
)
ENTRYPOINT_MESSAGE = "must look like module:callable, e.g. agent_runtime.builtins:echo"
HTTP_URL = r"^https?://[^\s/?#]+[^\s]*$"
HTTP_URL_MESSAGE = "must be an http:// or https:// URL"
WEBHOOK_PATH = r"^/[A-Za-z0-9._~/-]*$"
WEBHOOK_PATH_MESSAGE = "must start with '/' and contain only letters, digits and . _ ~ / -"
# Five fields (minute hour day-of-month month day-of-week) or six with a seconds field.
# The field syntax itself is checked by the operator's admission webhook with the same
# parser the runtime schedules with.
CRON_SHAPE = r"^\s*\S+(\s+\S+){4,5}\s*$"
CRON_SHAPE_MESSAGE = "must have 5 fields (minute hour day month weekday) or 6 with seconds"

CLUSTER_NAME_MESSAGE = (
    f"metadata.name must be a DNS label of at most {constants.MAX_CLUSTER_NAME_LENGTH} "
    f"characters, so that pod names <cluster>-<replica> fit in "
    f"{constants.DNS_LABEL_MAX} characters"
)
ONE_FUNCTION_KIND_MESSAGE = "a function must have exactly one of http, python or prompt"
AI_MODEL_MESSAGE = "ai.model is required unless ai.provider is echo"
AI_KEY_MESSAGE = "ai.apiKeySecretRef is required when ai.provider is anthropic"
PROMPT_NEEDS_AI_MESSAGE = "prompt functions need spec.ai"
WEBHOOK_PATHS_MESSAGE = "webhook paths must be unique"
MAX_UNAVAILABLE_PERCENT = r"^(100|[1-9][0-9]?)%$"
MAX_UNAVAILABLE_MESSAGE = (
    "maxUnavailable must be a whole number of replicas, at least 1, or a percentage from 1% "
    "to 100% (e.g. 1 or \"25%\"); 0 would block every node drain"
)
PROMPT_TOOLS_MESSAGE = "every prompt tool must name a function defined in spec.functions"


def cel(rule: str, message: str | None = None, **extra: str) -> dict[str, str]:
    """One `x-kubernetes-validations` entry."""
    entry = {"rule": rule}
    if message is not None:
        entry["message"] = message
    entry.update(extra)
    return entry


def _cel_string(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _shaped(regex: str, message: str, max_length: int, min_length: int = 1) -> Any:
    """A string type checked by `regex`, in Python and by a CEL rule with the same message."""
    compiled = re.compile(regex)

    def check(value: str) -> str:
        if not compiled.match(value):
            raise PydanticCustomError("invalid_format", message)
        return value

    return Annotated[
        str,
        Field(
            min_length=min_length,
            max_length=max_length,
            json_schema_extra={
                "x-kubernetes-validations": [cel(f"self.matches({_cel_string(regex)})", message)]
            },
        ),
        AfterValidator(check),
    ]


DnsLabel = _shaped(DNS_LABEL, DNS_LABEL_MESSAGE, constants.DNS_LABEL_MAX)
DnsSubdomain = _shaped(DNS_SUBDOMAIN, DNS_SUBDOMAIN_MESSAGE, 253)
FunctionName = _shaped(FUNCTION_NAME, FUNCTION_NAME_MESSAGE, constants.DNS_LABEL_MAX)
SecretKey = _shaped(SECRET_KEY, SECRET_KEY_MESSAGE, 253)
HeaderName = _shaped(HEADER_NAME, HEADER_NAME_MESSAGE, 128)
Entrypoint = _shaped(ENTRYPOINT, ENTRYPOINT_MESSAGE, 256)
HttpUrl = _shaped(HTTP_URL, HTTP_URL_MESSAGE, 2048)
WebhookPath = _shaped(WEBHOOK_PATH, WEBHOOK_PATH_MESSAGE, 256)
Cron = _shaped(CRON_SHAPE, CRON_SHAPE_MESSAGE, 128)


def _list_map(*keys: str) -> dict[str, Any]:
    """A list whose items are unique by `keys`: the API server enforces it, and server-side
    apply merges such lists item by item instead of replacing them whole."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


def _duplicates(values: list[str]) -> list[str]:
    return sorted(v for v, n in Counter(values).items() if n > 1)


class ApiModel(BaseModel):
    """Base of every API model: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )


# --- References to Secrets -----------------------------------------------------------


class SecretKeyRef(ApiModel):
    """A key of a Secret in the AgentCluster's namespace. Secret values are never inlined."""

    name: DnsSubdomain
    """Name of the Secret."""
    key: SecretKey
    """Key within the Secret."""


class SecretRef(ApiModel):
    """A whole Secret in the AgentCluster's namespace."""

    name: DnsSubdomain
    """Name of the Secret."""


# --- AI engine -----------------------------------------------------------------------


class AI(ApiModel):
    """The AI engine every replica talks to."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self.provider == 'echo' || has(self.model)", AI_MODEL_MESSAGE),
                cel("self.provider != 'anthropic' || has(self.apiKeySecretRef)", AI_KEY_MESSAGE),
            ]
        }
    )

    provider: Literal["openai", "anthropic", "echo"]
    """openai (any OpenAI-compatible endpoint), anthropic, or echo (replies with its input;
    for tests and demos)."""
    model: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    """Model name, e.g. gpt-4o-mini or claude-sonnet-4-5. Required unless provider is echo."""
    base_url: HttpUrl | None = Field(None, alias="baseURL")
    """Endpoint of an OpenAI-compatible API; the provider's default when absent."""
    api_key_secret_ref: SecretKeyRef | None = None
    """Secret key holding the API key."""
    system_prompt: Annotated[str, Field(max_length=MAX_TEXT)] | None = None
    """System prompt given to the model on every conversation."""
    allow_model_to_set_system_prompt: bool = False
    """Whether the model's own state_set tool may write the system_prompt state key, which
    replaces systemPrompt for its replica. Off by default: text the model reads (webhook
    payloads, MCP answers) could otherwise persist instructions into every later conversation."""

    @model_validator(mode="after")
    def _provider_needs(self) -> AI:
        if self.provider != "echo" and self.model is None:
            raise PydanticCustomError("missing_model", AI_MODEL_MESSAGE)
        if self.provider == "anthropic" and self.api_key_secret_ref is None:
            raise PydanticCustomError("missing_api_key", AI_KEY_MESSAGE)
        return self


# --- Functions -----------------------------------------------------------------------


class HttpHeader(ApiModel):
    """An HTTP header whose value comes from a Secret."""

    name: HeaderName
    """Header name, e.g. Authorization."""
    secret_key_ref: SecretKeyRef
    """Secret key holding the header's value."""


class HttpFunction(ApiModel):
    """Calls an HTTP endpoint with the run's fields as a JSON body: agent, namespace, replica,
    function, trigger, schedule, fire_time, attempt, idempotency_key, payload and the replica's
    state."""

    url: HttpUrl
    """URL to call."""
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    """HTTP method; every method carries the JSON body."""
    headers: Annotated[
        list[HttpHeader], Field(max_length=MAX_HEADERS, json_schema_extra=_list_map("name"))
    ] = Field(default_factory=list)
    """Headers sent with the request, each taken from a Secret."""
    timeout_seconds: Annotated[int, Field(ge=1, le=3600)] = 30
    """Timeout of one attempt."""
    retries: Annotated[int, Field(ge=0, le=10)] = 0
    """Further attempts after a failed one."""
    state_keys: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=256)]], Field(max_length=MAX_STATE_KEYS)
    ] | None = None
    """Keys of the replica's state sent in the body's state object. Absent: the whole state,
    which must fit in 1 MiB as JSON (else the run fails, naming this field)."""

    @model_validator(mode="after")
    def _unique_headers(self) -> HttpFunction:
        duplicated = _duplicates([header.name for header in self.headers])
        if duplicated:
            raise PydanticCustomError(
                "duplicate_name", "headers: duplicate name(s): {names}", {"names": ", ".join(duplicated)}
            )
        return self


class PythonFunction(ApiModel):
    """Calls a Python callable installed in the agent image."""

    entrypoint: Entrypoint
    """module:callable, e.g. agent_runtime.builtins:echo."""


class PromptFunction(ApiModel):
    """Runs the AI engine on a prompt template; the model may call the listed tools."""

    template: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
    """Prompt template; the run's payload fills its placeholders."""
    tools: Annotated[list[FunctionName], Field(max_length=MAX_PROMPT_TOOLS)] = Field(
        default_factory=list
    )
    """Names of functions of this AgentCluster the model may call."""


class Function(ApiModel):
    """A named unit of work, run by schedules, webhooks, chat or other prompts."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "(has(self.http) ? 1 : 0) + (has(self.python) ? 1 : 0)"
                    " + (has(self.prompt) ? 1 : 0) == 1",
                    ONE_FUNCTION_KIND_MESSAGE,
                )
            ]
        }
    )

    name: FunctionName
    """Unique name, lowercase words joined by dots, e.g. scraping.fetch-mentions."""
    http: HttpFunction | None = None
    python: PythonFunction | None = None
    prompt: PromptFunction | None = None

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> Function:
        if sum(kind is not None for kind in (self.http, self.python, self.prompt)) != 1:
            raise PydanticCustomError("function_kind", ONE_FUNCTION_KIND_MESSAGE)
        return self

    @property
    def kind(self) -> Literal["http", "python", "prompt"]:
        if self.http is not None:
            return "http"
        return "python" if self.python is not None else "prompt"


# --- Schedules -----------------------------------------------------------------------


class FailurePolicy(ApiModel):
    """What a schedule does after failed runs."""

    action: Literal["continue", "disable", "backoff"] = "continue"
    """continue: keep firing; disable: stop after maxConsecutiveFailures failures in a row;
    backoff: skip fires for backoffSeconds after maxConsecutiveFailures failures in a row."""
    max_consecutive_failures: Annotated[int, Field(ge=1, le=1000)] = 3
    """Failures in a row that trigger the action."""
    backoff_seconds: Annotated[int, Field(ge=1, le=86400)] = 30
    """Pause for the backoff action."""


def _check_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise PydanticCustomError(
            "unknown_timezone", 'unknown time zone "{tz}"', {"tz": value}
        ) from exc
    return value


class Schedule(ApiModel):
    """Runs a function on a cron schedule."""

    name: DnsLabel
    """Unique name of the schedule."""
    function: FunctionName
    """Name of the function to run; must be defined in spec.functions."""
    cron: Cron
    """Cron expression: 5 fields, or 6 with a seconds field."""
    timezone: Annotated[str, Field(min_length=1, max_length=64), AfterValidator(_check_timezone)] = (
        "UTC"
    )
    """IANA time zone the cron expression is read in, e.g. Europe/Paris."""
    mode: Literal["single", "cluster"] = "single"
    """single: each fire runs on exactly one replica; cluster: on every replica."""
    enabled: bool = True
    missed_fire_policy: Literal["skip", "runOnce", "backfill"] = "skip"
    """What to do with fires missed while no replica could run them."""
    backfill_limit: Annotated[int, Field(ge=1, le=1000)] = 10
    """Most missed fires run by the backfill policy."""
    missed_fire_grace_seconds: Annotated[int, Field(ge=0, le=86400)] = 10
    """A fire this late still runs as on time; later ones follow missedFirePolicy."""
    failure_policy: FailurePolicy = Field(
        default_factory=FailurePolicy, json_schema_extra={"default": {}}
    )
    allow_overlap: bool = False
    """Whether a fire may start while the previous run of this schedule is still running."""
    payload: dict[str, Any] = Field(default_factory=dict)
    """Free-form JSON object handed to the function on every fire."""


# --- Webhooks, channels, MCP servers -------------------------------------------------


class Webhook(ApiModel):
    """An HTTP endpoint on the gateway that runs a function; requests are signed with
    HMAC-SHA256 using the referenced secret."""

    name: DnsLabel
    """Unique name of the webhook."""
    path: WebhookPath
    """Path under the cluster's webhook prefix on the gateway, e.g. /github."""
    function: FunctionName
    """Name of the function to run; must be defined in spec.functions."""
    secret_ref: SecretKeyRef
    """Secret key holding the HMAC-SHA256 signing secret."""
    synchronous: bool = False
    """Whether the caller waits for the function's result (otherwise 202 Accepted)."""


class Channel(ApiModel):
    """A place the agent posts messages to."""

    name: DnsLabel
    """Unique name of the channel."""
    type: Literal["slack", "discord", "webhook"]
    url_secret_ref: SecretKeyRef
    """Secret key holding the channel's URL (incoming-webhook URLs are credentials)."""


class McpServer(ApiModel):
    """An MCP server whose tools the agent may use."""

    name: DnsLabel
    """Unique name of the MCP server."""
    url: HttpUrl
    """Streamable HTTP endpoint of the server."""
    headers_secret_ref: SecretRef | None = None
    """Secret whose every key is sent as an HTTP header of that name, with its value."""


# --- Limits and policies -------------------------------------------------------------


class Limits(ApiModel):
    """Orchestration limits of every replica."""

    max_concurrent_runs: Annotated[int, Field(ge=1, le=256)] = 4
    """Runs one replica executes at the same time; a busy replica claims no new fire."""
    run_timeout_seconds: Annotated[int, Field(ge=1, le=86400)] = 300
    """Longest a single function run may take."""
    max_iterations: Annotated[int, Field(ge=1, le=1000)] = 10
    """Model calls in one agent turn."""
    max_tokens: Annotated[int, Field(ge=1, le=10_000_000)] = 100_000
    """Tokens (prompt and completion) one agent turn may use."""
    max_wall_clock_seconds: Annotated[int, Field(ge=1, le=86400)] = 600
    """Longest one agent turn may take, function calls included."""
    max_function_calls: Annotated[int, Field(ge=0, le=10000)] = 20
    """Function calls in one agent turn."""
    memory_max_tokens: Annotated[int, Field(ge=100, le=10_000_000)] = 8000
    """Conversation memory kept per replica and conversation, in (estimated) tokens; the
    oldest turns are dropped past it."""
    lease_seconds: Annotated[int, Field(ge=5, le=3600)] = 30
    """Lease on a running single-mode fire; a replica silent this long loses the fire to another."""
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 3
    """Attempts of one fire (the first run and the takeovers after lost leases)."""
    state_max_value_bytes: Annotated[int, Field(ge=1, le=16 * 1024 * 1024)] = 64 * 1024
    """Largest JSON value one state key may hold."""
    state_max_total_bytes: Annotated[int, Field(ge=1, le=256 * 1024 * 1024)] = 1024 * 1024
    """Largest total state one replica (or the cluster scope) may hold."""
    history_retention_hours: Annotated[int, Field(ge=1, le=24 * 366)] = 7 * 24
    """Finished fires and runs older than this are swept."""


class StatePolicy(ApiModel):
    """What happens to the replicas' state (memory, key-value state, history)."""

    when_deleted: Literal["Retain", "Delete"] = "Retain"
    """On deletion of the AgentCluster: keep the state archived, or delete it."""


# --- Pods and disruptions ------------------------------------------------------------


class ImagePullSecret(ApiModel):
    """A Secret (type kubernetes.io/dockerconfigjson) in the AgentCluster's namespace that
    the kubelet uses to pull the image. Unlike `SecretRef` its value never reaches the
    replicas: only the kubelet reads it, as for any pod's imagePullSecrets."""

    name: DnsSubdomain
    """Name of the Secret."""


def _check_max_unavailable(value: int | str) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool):
        if value >= 1:
            return value
    elif isinstance(value, str) and re.match(MAX_UNAVAILABLE_PERCENT, value):
        return value
    raise PydanticCustomError("max_unavailable", MAX_UNAVAILABLE_MESSAGE)


# A Kubernetes IntOrString (as in a PodDisruptionBudget): `x-kubernetes-int-or-string` is the
# one union a structural schema allows, so the schema is written out rather than generated.
MaxUnavailable = Annotated[
    int | str,
    AfterValidator(_check_max_unavailable),
    WithJsonSchema({
        "x-kubernetes-int-or-string": True,
        "x-kubernetes-validations": [cel(
            f"type(self) == int ? self >= 1 : self.matches({_cel_string(MAX_UNAVAILABLE_PERCENT)})",
            MAX_UNAVAILABLE_MESSAGE,
        )],
    }),
]


class Disruption(ApiModel):
    """The PodDisruptionBudget of a cluster of 2 or more replicas: how many replicas a
    voluntary disruption (a node drain, an eviction) may take down at the same time."""

    max_unavailable: MaxUnavailable = 1
    """Replicas that may be unavailable at once: a number (at least 1) or a percentage of
    spec.replicas, rounded up (e.g. "25%")."""


# --- Spec ----------------------------------------------------------------------------


def _refs_rule(items: str, singular: str) -> dict[str, str]:
    # No messageExpression naming the culprit: the API server's cost estimator cannot bound
    # the size of a `filter()` result, and refuses the CRD. The Python twin names it.
    return cel(
        f"!has(self.{items}) || self.{items}.all(x, has(self.functions) && "
        f"self.functions.exists(f, f.name == x.function))",
        _refs_message(singular),
        fieldPath=f".{items}",
    )


def _refs_message(singular: str) -> str:
    return f"every {singular} must name a function defined in spec.functions"


_PROMPT_TOOLS_RULE = cel(
    "!has(self.functions) || self.functions.all(f, !has(f.prompt) || !has(f.prompt.tools)"
    " || f.prompt.tools.all(t, self.functions.exists(g, g.name == t)))",
    PROMPT_TOOLS_MESSAGE,
    fieldPath=".functions",
)
_PROMPT_NEEDS_AI_RULE = cel(
    "has(self.ai) || !has(self.functions) || !self.functions.exists(f, has(f.prompt))",
    PROMPT_NEEDS_AI_MESSAGE,
)


class AgentClusterSpec(ApiModel):
    """Desired state of an AgentCluster: how many replicas, and the agent they all run."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _refs_rule("schedules", "schedule"),
                _refs_rule("webhooks", "webhook"),
                _PROMPT_TOOLS_RULE,
                _PROMPT_NEEDS_AI_RULE,
            ]
        }
    )

    replicas: Annotated[int, Field(ge=constants.MIN_REPLICAS, le=constants.MAX_REPLICAS)] = 1
    """Number of named replicas."""
    ai: AI | None = None
    functions: Annotated[
        list[Function], Field(max_length=MAX_FUNCTIONS, json_schema_extra=_list_map("name"))
    ] = Field(default_factory=list)
    """Functions the agent can run, unique by name."""
    schedules: Annotated[
        list[Schedule], Field(max_length=MAX_SCHEDULES, json_schema_extra=_list_map("name"))
    ] = Field(default_factory=list)
    """Cron schedules, unique by name."""
    webhooks: Annotated[
        list[Webhook],
        Field(
            max_length=MAX_WEBHOOKS,
            json_schema_extra={
                **_list_map("name"),
                "x-kubernetes-validations": [
                    cel("self.all(w, self.exists_one(v, v.path == w.path))", WEBHOOK_PATHS_MESSAGE)
                ],
            },
        ),
    ] = Field(default_factory=list)
    """Webhooks, unique by name and by path."""
    channels: Annotated[
        list[Channel], Field(max_length=MAX_CHANNELS, json_schema_extra=_list_map("name"))
    ] = Field(default_factory=list)
    """Channels the agent can post to, unique by name."""
    mcp_servers: Annotated[
        list[McpServer], Field(max_length=MAX_MCP_SERVERS, json_schema_extra=_list_map("name"))
    ] = Field(default_factory=list)
    """MCP servers whose tools the agent can use, unique by name."""
    limits: Limits = Field(default_factory=Limits, json_schema_extra={"default": {}})
    image: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    """Container image of the replicas; the operator's configured image when absent."""
    state_policy: StatePolicy = Field(default_factory=StatePolicy, json_schema_extra={"default": {}})
    image_pull_secrets: Annotated[
        list[ImagePullSecret],
        Field(max_length=MAX_IMAGE_PULL_SECRETS, json_schema_extra=_list_map("name")),
    ] = Field(default_factory=list)
    """Secrets for pulling a private image, unique by name; carried to every replica pod."""
    disruption: Disruption | None = None
    """The PodDisruptionBudget of 2 or more replicas; maxUnavailable 1 when absent."""

    @model_validator(mode="after")
    def _cross_references(self) -> AgentClusterSpec:
        for field in ("functions", "schedules", "webhooks", "channels", "mcp_servers", "image_pull_secrets"):
            duplicated = _duplicates([item.name for item in getattr(self, field)])
            if duplicated:
                raise PydanticCustomError(
                    "duplicate_name",
                    "{field}: duplicate name(s): {names}",
                    {"field": to_camel(field), "names": ", ".join(duplicated)},
                )
        defined = {f.name for f in self.functions}
        for kind, items in (("schedule", self.schedules), ("webhook", self.webhooks)):
            for item in items:
                if item.function not in defined:
                    raise PydanticCustomError(
                        "unknown_function",
                        '{message}: {kind} "{name}" names function "{function}"',
                        {
                            "message": _refs_message(kind),
                            "kind": kind,
                            "name": item.name,
                            "function": item.function,
                        },
                    )
        if _duplicates([w.path for w in self.webhooks]):
            raise PydanticCustomError("duplicate_path", WEBHOOK_PATHS_MESSAGE)
        for function in self.functions:
            if function.prompt is None:
                continue
            for tool in function.prompt.tools:
                if tool not in defined:
                    raise PydanticCustomError(
                        "unknown_function",
                        '{message}: function "{name}" lists tool "{tool}"',
                        {"message": PROMPT_TOOLS_MESSAGE, "name": function.name, "tool": tool},
                    )
            if self.ai is None:
                raise PydanticCustomError("missing_ai", PROMPT_NEEDS_AI_MESSAGE)
        return self

    def function(self, name: str) -> Function | None:
        return next((f for f in self.functions if f.name == name), None)


# --- Status --------------------------------------------------------------------------


class Member(ApiModel):
    """A live replica: its name is its identity, kept across pod loss."""

    name: str
    """Replica name, e.g. daring-duck."""
    ordinal: Annotated[int, Field(ge=0)]
    """Creation order within the cluster; scale-down removes the highest first."""
    pod: str
    """Name of the replica's pod: <cluster>-<name>."""
    phase: str | None = None
    """Phase of the pod, as last seen."""
    ready: bool = False
    """Whether the pod passes its readiness probe."""


# How many archived members the status keeps: the newest, with `archivedCount` for the total;
# PostgreSQL keeps them all (the gateway's list_archived_replicas pages through them). A status
# that grew with history would reach etcd's 1.5 MB object limit under a flapping HPA (about
# 15,000 scale-downs at ~100 bytes each); 20 entries are ~2 KB, enough to show what the last
# few scale-downs removed (an HPA's scale-down of a typical cluster) at a glance in
# `kubectl get -o yaml`, and small next to the rest of the object.
ARCHIVED_IN_STATUS = 20


class ArchivedMember(ApiModel):
    """A replica removed by scale-down; its state is kept read-only and its name is never
    given out again."""

    name: str
    ordinal: Annotated[int, Field(ge=0)]
    archived_at: datetime


class Condition(ApiModel):
    """A standard Kubernetes condition (types: Ready, Progressing, Degraded, QuotaExceeded)."""

    type: Annotated[str, Field(min_length=1, max_length=316)]
    status: Literal["True", "False", "Unknown"]
    reason: Annotated[str, Field(max_length=1024)] | None = None
    """CamelCase machine-readable reason of the last transition."""
    message: Annotated[str, Field(max_length=32768)] | None = None
    """Human-readable detail."""
    last_transition_time: datetime | None = None
    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """metadata.generation the condition was computed from."""


class AgentClusterStatus(ApiModel):
    """Observed state of an AgentCluster, written by the operator only."""

    observed_generation: Annotated[int, Field(ge=0)] | None = None
    """metadata.generation the operator last acted on."""
    replicas: Annotated[int, Field(ge=0)] = 0
    """Number of members (for the scale subresource)."""
    ready_replicas: Annotated[int, Field(ge=0)] = 0
    """Members whose pod is ready."""
    selector: str | None = None
    """Label selector of the replica pods (for the scale subresource and HPAs)."""
    members: list[Member] = Field(default_factory=list)
    """Live replicas, by ordinal."""
    archived: Annotated[
        list[ArchivedMember], Field(json_schema_extra={"maxItems": ARCHIVED_IN_STATUS})
    ] = Field(default_factory=list)
    """The newest archived replicas (at most 20), by ordinal; all of them are in PostgreSQL
    (MCP tool list_archived_replicas). Their names are never reused."""
    archived_count: Annotated[int, Field(ge=0)] = 0
    """How many replicas of this cluster are archived in all."""
    next_ordinal: Annotated[int, Field(ge=0)] = 0
    """Ordinal the next new member gets."""
    conditions: Annotated[
        list[Condition], Field(json_schema_extra=_list_map("type"))
    ] = Field(default_factory=list)

    @model_validator(mode="after")
    def _bound_archived(self) -> AgentClusterStatus:
        # A status written before the list was bounded may hold every archived member: keep
        # the newest and count them all, so the next write fits the CRD's maxItems.
        if len(self.archived) > ARCHIVED_IN_STATUS:
            self.archived_count = max(self.archived_count, len(self.archived))
            self.archived = sorted(self.archived, key=lambda a: a.ordinal)[-ARCHIVED_IN_STATUS:]
        return self


# --- The object ----------------------------------------------------------------------


def _check_cluster_name(value: str | None) -> str | None:
    if value is not None and (
        len(value) > constants.MAX_CLUSTER_NAME_LENGTH or not re.match(DNS_LABEL, value)
    ):
        raise PydanticCustomError("cluster_name", CLUSTER_NAME_MESSAGE)
    return value


CLUSTER_NAME_RULE = cel(
    f"self.metadata.name.size() <= {constants.MAX_CLUSTER_NAME_LENGTH}"
    f" && self.metadata.name.matches({_cel_string(DNS_LABEL)})",
    CLUSTER_NAME_MESSAGE,
    fieldPath=".metadata.name",
)


class ObjectMeta(BaseModel):
    """The parts of Kubernetes metadata the API cares about; the rest passes through."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    name: Annotated[str | None, AfterValidator(_check_cluster_name)] = None
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int | None = None


class AgentCluster(ApiModel):
    """A cluster of named AI agent replicas sharing one configuration."""

    api_version: Literal["agentclusters.io/v1alpha1"] = constants.API_VERSION
    kind: Literal["AgentCluster"] = constants.KIND
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: AgentClusterSpec = Field(default_factory=AgentClusterSpec)
    status: AgentClusterStatus | None = None


def error_messages(error: ValidationError) -> list[str]:
    """`path: message` lines in Kubernetes field-path notation (spec.functions[0].name)."""
    lines = []
    for item in error.errors():
        path = ""
        for part in item["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        lines.append(f"{path}: {item['msg']}" if path else item["msg"])
    return lines
