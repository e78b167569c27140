"""HTTP calls from the gateway to a replica's runtime (`/chat`, `/run/{function}`,
`/hooks/{webhook}`), with the cluster's replica token (agent_api.replica_auth): a replica
answers no one without it.

Over HTTP the gateway derives each cluster's token from the master key and reads no Secret;
over stdio it reads the cluster's token Secret as the kubeconfig's user, so a local user
reaches only the replicas whose Secret their own RBAC lets them read.

Whatever goes wrong on the way (the replica went away, timed out, answered an error) becomes a
GatewayError naming the replica and the runtime's own words, coded by what happened
(`refusal`: the replica's HTTP status; no answer at all: `unavailable`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp

from agent_api import replica_auth
from agent_gateway import errors, kube


class ReplicaTokens(Protocol):
    async def token(self, namespace: str, cluster: str) -> str: ...


class DerivedTokens:
    """Tokens computed from the master key (the gateway's HTTP mode)."""

    def __init__(self, master_key: bytes) -> None:
        self._key = master_key

    async def token(self, namespace: str, cluster: str) -> str:
        return replica_auth.token(self._key, namespace, cluster)


class SecretTokens:
    """Tokens read from each cluster's Secret with the gateway's own Kubernetes identity (over
    stdio, the kubeconfig's user)."""

    def __init__(self, api: kube.Kube) -> None:
        self._kube = api

    async def token(self, namespace: str, cluster: str) -> str:
        return await self._kube.replica_token(namespace, cluster)


# Connection pool to the replicas: one keep-alive connection per request in flight, reused by
# the next request to the same replica, so a chat pays no TCP handshake. Sized for a gateway
# at concurrency 64 and beyond: 1,024 connections in all, 256 to any one replica (a replica's
# own concurrency limit answers 429 well before that). An idle connection is closed after
# KEEPALIVE_SECONDS: below the replica's own idle timeout (aiohttp's web server, 75 s), so the
# gateway closes first and never sends a chat on a connection the replica is just closing (a
# POST is not retried on a dropped connection).
POOL_LIMIT = 1024
POOL_LIMIT_PER_REPLICA = 256
KEEPALIVE_SECONDS = 30.0


class RuntimeClient:
    def __init__(self, timeout_seconds: float, tokens: ReplicaTokens) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds, connect=5)
        self._session: aiohttp.ClientSession | None = None
        self._tokens = tokens

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=POOL_LIMIT, limit_per_host=POOL_LIMIT_PER_REPLICA,
                                             keepalive_timeout=KEEPALIVE_SECONDS)
            self._session = aiohttp.ClientSession(timeout=self._timeout, connector=connector)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, namespace: str, cluster: str, replica: str, url: str, *, json_body: Any = None,
                   data: bytes | None = None, headers: Mapping[str, str] | None = None
                   ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """POST with the cluster's token; the status, response headers (names lower-cased) and
        JSON answer."""
        sent = {**(headers or {}), "Authorization": f"Bearer {await self._tokens.token(namespace, cluster)}"}
        try:
            async with self._client().post(url, json=json_body, data=data, headers=sent) as response:
                text = await response.text()
                try:
                    answer = json.loads(text) if text else {}
                except ValueError:
                    answer = {"error": text[:500]}
                return (response.status, {k.lower(): v for k, v in response.headers.items()},
                        answer if isinstance(answer, dict) else {"result": answer})
        except TimeoutError:
            raise errors.GatewayError(
                f'replica "{replica}" did not answer within {self._timeout.total:.0f}s', code="unavailable") from None
        except aiohttp.ClientError as exc:
            raise errors.GatewayError(f'replica "{replica}" could not be reached: {exc}', code="unavailable") from None

    async def chat(self, namespace: str, cluster: str, replica: str, address: str, message: str,
                   conversation_id: str) -> dict[str, Any]:
        status, headers, answer = await self.post(namespace, cluster, replica, f"{address}/chat",
                                                  json_body={"message": message, "conversation_id": conversation_id})
        if status != 200:
            raise refusal(f'replica "{replica}" refused the chat (HTTP {status}): {answer.get("error") or answer}',
                          status, headers)
        return answer

    async def start_run(self, namespace: str, cluster: str, replica: str, address: str, function: str,
                        payload: dict[str, Any]) -> dict[str, Any]:
        """Start a manual run of `function` and answer at once (the replica's 202: run id,
        replica); the run finishes on the replica and is recorded in `runs`."""
        status, headers, answer = await self.post(
            namespace, cluster, replica, f"{address}/run/{function}",
            json_body={"trigger": "manual", "wait": False, "payload": payload})
        if status != 202 or not isinstance(answer.get("run_id"), int):
            raise refusal(f'replica "{replica}" did not start function "{function}" (HTTP {status}): '
                          f'{answer.get("error") or answer}', status, headers)
        return answer

    async def deliver(self, namespace: str, cluster: str, replica: str, address: str, webhook: str,
                      body: bytes, headers: Mapping[str, str]) -> tuple[int, dict[str, str], dict[str, Any]]:
        """Forward a webhook delivery as received (raw body, signature headers): the replica
        verifies and runs it."""
        return await self.post(namespace, cluster, replica, f"{address}/hooks/{webhook}", data=body,
                               headers=headers)


def refusal(message: str, status: int, headers: Mapping[str, str]) -> errors.GatewayError:
    """A replica's refusal, coded by its HTTP status (agent_runtime/server.py): 404 an unknown
    function or webhook, 400 a bad request, 429 at its concurrency limit and 503 not able yet
    (both with Retry-After), 502 a run or turn that failed."""
    retry = headers.get("retry-after")
    code: errors.Code = {404: "not_found", 400: "invalid", 409: "conflict"}.get(status, "unavailable")
    return errors.GatewayError(message, code=code,
                               retry_after_seconds=int(retry) if retry and retry.isdigit() else None)
