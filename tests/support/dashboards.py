"""The metric names a Grafana dashboard's PromQL asks for.

Enough of PromQL to find them without a parser: string literals, label matchers `{...}`,
range selectors `[...]` and grouping lists `by (...)` are removed; what remains that looks like
a name and is not a function call, a keyword or a number is a metric name. Template variables
use Grafana's `label_values(metric, label)`, whose first argument is the metric.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
                      "and", "or", "unless", "atan2", "inf", "nan"})
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_NAME = re.compile(r"(?<![\w$.:])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?")
_LABEL_VALUES = re.compile(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{,]")


def metric_names(expr: str) -> set[str]:
    stripped = _RANGES.sub("", _MATCHERS.sub("", _STRINGS.sub("", expr)))
    stripped = _GROUPING.sub("", stripped)
    return {match.group(1) for match in _NAME.finditer(stripped)
            if not match.group(2) and match.group(1).lower() not in KEYWORDS}


def exprs(dashboard: dict[str, Any]) -> list[str]:
    """Every panel target's `expr`, nested rows included."""
    found: list[str] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            found.extend(target["expr"] for target in panel.get("targets", []) if target.get("expr"))
            walk(panel.get("panels", []))

    walk(dashboard.get("panels", []))
    return found


def template_metric_names(dashboard: dict[str, Any]) -> set[str]:
    names = set()
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        names.update(_LABEL_VALUES.findall(text))
    return names


def dashboard_metric_names(path: Path) -> set[str]:
    dashboard = json.loads(path.read_text("utf-8"))
    names = template_metric_names(dashboard)
    for expr in exprs(dashboard):
        names |= metric_names(expr)
    return names
