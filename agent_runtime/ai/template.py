"""Filling a prompt template with the trigger's payload.

Placeholders are `{{ name }}`, with dots for nested keys (`{{ repo.owner }}`). Names are looked
up in the payload first, then in the run's fields (`agent`, `namespace`, `replica`,
`function`, `trigger`, `schedule`, `fire_time`, `attempt`, `idempotency_key`); `{{ payload }}`
is the whole payload as JSON. Strings go in as they are, anything else as JSON. A placeholder
that names nothing is an error: a prompt silently missing its data is worse than a failed run.
"""

from __future__ import annotations

import json
import re
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w-]*(?:\.[\w-]+)*)\s*\}\}")


class TemplateError(Exception):
    pass


def fill(template: str, payload: dict[str, Any], fields: dict[str, Any]) -> str:
    scope = {**fields, "payload": payload, **payload}

    def replace(match: re.Match[str]) -> str:
        value: Any = scope
        for part in match.group(1).split("."):
            if not isinstance(value, dict) or part not in value:
                raise TemplateError(f"template placeholder {{{{ {match.group(1)} }}}} names "
                                    f"nothing in the payload or the run's fields")
            value = value[part]
        return value if isinstance(value, str) else json.dumps(value, default=str)

    return _PLACEHOLDER.sub(replace, template)
