"""Edits of an AgentCluster spec, as pure functions on its wire form (camelCase dicts).

Each edit returns a new spec and never touches fields it does not own, so unknown or defaulted
fields survive a round trip. `validated` checks the result with the same models the CRD is
generated from and turns a refusal into `spec.<path>: <message>` lines; cron expressions are
checked with the scheduler's own parser. Kept free of I/O so the messages are unit-tested.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from pydantic import ValidationError

from agent_api import cron, models
from agent_gateway import errors

LISTS = {"function": "functions", "schedule": "schedules", "webhook": "webhooks", "channel": "channels",
         "MCP server": "mcpServers"}


def validated(spec: dict[str, Any], agent: str) -> dict[str, Any]:
    try:
        models.AgentClusterSpec.model_validate(spec)
    except ValidationError as exc:
        lines = [f"spec.{line}" if not line.startswith("spec") else line for line in models.error_messages(exc)]
        raise errors.GatewayError(f'invalid change to agent "{agent}": ' + "; ".join(lines), code="invalid") from None
    return spec


def check_name(name: str) -> None:
    """An agent name the API would accept (it names pods <agent>-<replica>)."""
    try:
        models.ObjectMeta(name=name)
    except ValidationError:
        raise errors.GatewayError(f'invalid agent name "{name}": {models.CLUSTER_NAME_MESSAGE}',
                                  code="invalid") from None


def names(spec: dict[str, Any], kind: str) -> list[str]:
    return [item["name"] for item in spec.get(LISTS[kind]) or []]


def add_item(spec: dict[str, Any], kind: str, item: dict[str, Any], agent: str) -> dict[str, Any]:
    existing = names(spec, kind)
    if item["name"] in existing:
        raise errors.GatewayError(
            f'agent "{agent}" already has a {kind} named "{item["name"]}"; remove it first or pick another name',
            code="conflict")
    new = copy.deepcopy(spec)
    new.setdefault(LISTS[kind], []).append(item)
    return validated(new, agent)


def remove_item(spec: dict[str, Any], kind: str, name: str, agent: str) -> dict[str, Any]:
    existing = names(spec, kind)
    if name not in existing:
        listing = ", ".join(existing) or "none"
        raise errors.GatewayError(f'agent "{agent}" has no {kind} named "{name}"; its {LISTS[kind]}: {listing}',
                                  code="not_found")
    new = copy.deepcopy(spec)
    new[LISTS[kind]] = [item for item in new[LISTS[kind]] if item["name"] != name]
    if not new[LISTS[kind]]:
        del new[LISTS[kind]]
    return validated(new, agent)


def require_function(spec: dict[str, Any], function: str, agent: str) -> None:
    defined = names(spec, "function")
    if function not in defined:
        listing = ", ".join(defined) or "none"
        raise errors.GatewayError(
            f'agent "{agent}" has no function named "{function}" (defined: {listing}); add it with add_function first',
            code="not_found")


def remove_function(spec: dict[str, Any], name: str, agent: str) -> dict[str, Any]:
    users = [f'schedule "{s["name"]}"' for s in spec.get("schedules") or [] if s.get("function") == name]
    users += [f'webhook "{w["name"]}"' for w in spec.get("webhooks") or [] if w.get("function") == name]
    users += [f'function "{f["name"]}" (as a prompt tool)' for f in spec.get("functions") or []
              if name in ((f.get("prompt") or {}).get("tools") or [])]
    if users:
        raise errors.GatewayError(
            f'function "{name}" of agent "{agent}" is still used by {", ".join(users)}; remove those first',
            code="conflict")
    return remove_item(spec, "function", name, agent)


def schedule_name(spec: dict[str, Any], function: str, mode: str) -> str:
    """A free schedule name derived from the function and mode, e.g. `scraping-fetch-single`."""
    base = re.sub(r"[^a-z0-9-]+", "-", f"{function}-{mode}".lower()).strip("-")[:56].strip("-")
    taken = set(names(spec, "schedule"))
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def add_schedule(spec: dict[str, Any], schedule: dict[str, Any], agent: str) -> dict[str, Any]:
    try:
        cron.validate(schedule["cron"], schedule.get("timezone", "UTC"))
    except cron.CronError as exc:
        raise errors.GatewayError(
            f'invalid schedule "{schedule["name"]}" for agent "{agent}": {exc} '
            "(cron_expression/timezone; 5 fields minute hour day month weekday, or 6 with a leading "
            "seconds field, e.g. '*/5 * * * * *' for every 5 seconds)", code="invalid") from None
    require_function(spec, schedule["function"], agent)
    return add_item(spec, "schedule", schedule, agent)


def replace_field(spec: dict[str, Any], field: str, value: Any, agent: str) -> dict[str, Any]:
    new = copy.deepcopy(spec)
    if value is None:
        new.pop(field, None)
    else:
        new[field] = value
    return validated(new, agent)
