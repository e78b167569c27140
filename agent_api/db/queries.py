"""Named SQL queries, loaded once from the `.sql` files in `queries/`.

Each query is a block that starts with `-- name: QueryName`; Python code refers to queries by
name (`queries.SQL["ClaimFire"]`) and never carries SQL strings of its own. The name line stays
the first line of the text sent to the server, so `pg_stat_activity.query` and the server log
say which query a backend runs, and a fault-injecting proxy can recognise one on the wire.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import MappingProxyType

QUERIES_DIR = Path(__file__).parent / "queries"
_NAME_LINE = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


def parse(text: str) -> dict[str, str]:
    """Split one `.sql` file into {name: query}; each query keeps its name line and comments."""
    parts = _NAME_LINE.split(text)
    found: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        query = body.strip().rstrip(";").strip()
        if not query:
            raise ValueError(f"query {name!r} is empty")
        if name in found:
            raise ValueError(f"query {name!r} is defined twice")
        found[name] = f"-- name: {name}\n{query}"
    return found


def load(directory: Path = QUERIES_DIR) -> MappingProxyType[str, str]:
    queries: dict[str, str] = {}
    for path in sorted(directory.glob("*.sql")):
        for name, query in parse(path.read_text()).items():
            if name in queries:
                raise ValueError(f"query {name!r} in {path.name} is already defined")
            queries[name] = query
    return MappingProxyType(queries)


SQL = load()
