"""Per-replica chat memory in PostgreSQL, keyed by conversation id, trimmed to a token budget,
and the PostgreSQL side of one chat turn: two statements, whatever the history.

Only the user's messages and the agent's final replies are kept (not the tool calls in
between): that is what a follow-up needs, and it keeps every stored history valid for every
provider. The replica is part of every key, so the same conversation id sent to two replicas
makes two independent histories. After each exchange the turns that no longer fit
`spec.limits.memoryMaxTokens` (counted from the newest; tokens estimated at four characters
each) are deleted.

Cost of one turn (the queries are in `agent_api/db/queries/conversations.sql`):
`BeginChatTurn` records the run as running and reads the memory and the system prompt
override; `FinishChatTurn` finishes the run, stores the exchange and trims the conversation
(a turn that did not complete stores nothing: `FinishRun`). Two round trips, two
transactions, none held open while the model works; the run is `running` in the history
for as long as the model takes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from agent_api.db import queries
from agent_runtime.ai import providers, redaction


@dataclass(frozen=True)
class Turn:
    """A chat turn begun: its run, the memory it was given, the system prompt override."""

    run_id: int
    history: list[providers.Message]
    system_prompt: Any  # the replica's state under the override key, decoded; None if unset


class Memory:
    def __init__(self, pool: asyncpg.Pool, namespace: str, cluster: str, replica: str) -> None:
        self._pool = pool
        self._key = (namespace, cluster, replica)

    async def begin(self, conversation_id: str, budget_tokens: int, system_prompt_key: str) -> Turn:
        """Record the turn's run (trigger `chat`, running) and read the newest turns that fit
        the budget, oldest first, with the system prompt override: one statement."""
        row = await self._pool.fetchrow(queries.SQL["BeginChatTurn"], *self._key, conversation_id,
                                        system_prompt_key, budget_tokens)
        history = [providers.Message(role, content)
                   for role, content in zip(row["roles"], row["contents"], strict=True)]
        raw = row["system_prompt"]
        return Turn(row["run_id"], history, None if raw is None else json.loads(raw))

    async def finish(self, run_id: int, status: str, error: str | None, output: str | None,
                     conversation_id: str, budget_tokens: int,
                     exchange: tuple[str, str] | None) -> None:
        """Finish the run (`error` and `output` as `Runner.recordable` makes them); with
        `exchange` (the user's message, the final reply), store it and drop what no longer
        fits the budget, in the same statement."""
        if exchange is None:
            await self._pool.execute(queries.SQL["FinishRun"], run_id, status, error, output)
            return
        user_text, reply = (redaction.scrub(text) for text in exchange)
        await self._pool.execute(
            queries.SQL["FinishChatTurn"], run_id, status, error, output, *self._key,
            conversation_id, user_text, providers.estimate_tokens(user_text),
            reply, providers.estimate_tokens(reply), budget_tokens)
