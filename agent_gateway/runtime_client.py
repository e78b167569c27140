"""HTTP calls from the gateway to a replica's runtime (`/chat`, `/run/{function}`).

Whatever goes wrong on the way (the replica went away, timed out, answered an error) becomes a
GatewayError naming the replica and the runtime's own words.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from agent_gateway import errors


class RuntimeClient:
    def __init__(self, timeout_seconds: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds, connect=5)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, replica: str, url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        try:
            async with self._client().post(url, json=body) as response:
                text = await response.text()
                try:
                    answer = json.loads(text) if text else {}
                except ValueError:
                    answer = {"error": text[:500]}
                return response.status, answer if isinstance(answer, dict) else {"result": answer}
        except TimeoutError:
            raise errors.GatewayError(
                f'replica "{replica}" did not answer within {self._timeout.total:.0f}s') from None
        except aiohttp.ClientError as exc:
            raise errors.GatewayError(f'replica "{replica}" could not be reached: {exc}') from None

    async def chat(self, replica: str, address: str, message: str, conversation_id: str) -> dict[str, Any]:
        status, answer = await self.post(replica, f"{address}/chat",
                                         {"message": message, "conversation_id": conversation_id})
        if status != 200:
            raise errors.GatewayError(
                f'replica "{replica}" refused the chat (HTTP {status}): {answer.get("error") or answer}')
        return answer

    async def run(self, replica: str, address: str, function: str, payload: dict[str, Any],
                  trigger: str, idempotency_key: str | None, *, wait: bool) -> tuple[int, dict[str, Any]]:
        """Start a run on the replica; with `wait` the answer carries its result, else (202)
        only its id."""
        return await self.post(replica, f"{address}/run/{function}",
                               {"trigger": trigger, "payload": payload, "idempotency_key": idempotency_key,
                                "wait": wait})
