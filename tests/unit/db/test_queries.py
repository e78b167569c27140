"""Named queries: all load, and every SKIP LOCKED or lease query says why it is safe."""

from __future__ import annotations

import pytest

from agent_api.db import migrate, queries


def test_each_query_starts_with_its_name_line():
    assert queries.parse("-- name: A\n-- why\nSELECT 1;\n") == {"A": "-- name: A\n-- why\nSELECT 1"}
    assert all(q.startswith(f"-- name: {n}\n") for n, q in queries.SQL.items())


def test_duplicate_names_are_refused():
    with pytest.raises(ValueError, match="defined twice"):
        queries.parse("-- name: A\nSELECT 1;\n-- name: A\nSELECT 2;")


@pytest.mark.parametrize("name", [n for n, q in queries.SQL.items()
                                  if "SKIP LOCKED" in q or "lease_token = " in q])
def test_concurrency_sensitive_queries_carry_a_comment(name):
    _, body = queries.SQL[name].split("\n", 1)  # past the name line
    assert body.lstrip().startswith("--"), f"{name} needs a why-it-is-safe comment"


def test_migrations_are_numbered_without_gaps():
    assert [m.version for m in migrate.load_migrations()] == list(
        range(1, len(migrate.load_migrations()) + 1))
