"""The codes an API server's or a replica's HTTP status becomes, and how a tool error's code is
found behind the SDK's wrapping."""

from __future__ import annotations

import pytest
from kubernetes.client.exceptions import ApiException
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, ValidationError

from agent_gateway import errors, runtime_client, server


@pytest.mark.parametrize(("status", "code"), [
    (404, "not_found"), (403, "forbidden"), (401, "forbidden"), (409, "conflict"), (422, "invalid"),
    (400, "invalid"), (429, "rate_limited"), (500, "unavailable"), (503, "unavailable"), (None, "unavailable"),
])
def test_an_api_server_status_becomes_its_code(status, code):
    refused = errors.from_api(ApiException(status=status, reason="x"))
    assert refused.code == code


def test_an_api_refusal_keeps_the_api_servers_words():
    exc = ApiException(status=403, reason="Forbidden")
    exc.body = '{"kind": "Status", "message": "admission webhook denied: 2 agent slots"}'
    refused = errors.from_api(exc)
    assert str(refused) == "admission webhook denied: 2 agent slots" and refused.code == "forbidden"


@pytest.mark.parametrize(("status", "retry_after", "code", "seconds"), [
    (404, None, "not_found", None), (400, None, "invalid", None), (429, "5", "unavailable", 5),
    (503, "10", "unavailable", 10), (502, None, "unavailable", None),
])
def test_a_replica_status_becomes_its_code(status, retry_after, code, seconds):
    headers = {"retry-after": retry_after} if retry_after else {}
    refused = runtime_client.refusal("no", status, headers)
    assert (refused.code, refused.retry_after_seconds) == (code, seconds)


def test_the_code_is_found_behind_the_sdks_wrapping():
    mine = errors.GatewayError("no such run", code="not_found")
    try:
        try:
            raise mine
        except errors.GatewayError as exc:
            raise ToolError(f"Error executing tool get_run: {exc}") from exc
    except ToolError as wrapped:
        assert server.coded(wrapped) is mine


def test_a_schema_refusal_has_no_gateway_code():
    class Model(BaseModel):
        n: int

    try:
        try:
            Model.model_validate({"n": "x"})
        except ValidationError as exc:
            raise ToolError("Error executing tool get_run: bad") from exc
    except ToolError as wrapped:
        assert server.coded(wrapped) is None
