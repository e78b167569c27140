"""Per-replica chat memory in PostgreSQL, keyed by conversation id, trimmed to a token budget.

Only the user's messages and the agent's final replies are kept (not the tool calls in
between): that is what a follow-up needs, and it keeps every stored history valid for every
provider. The replica is part of every key, so the same conversation id sent to two replicas
makes two independent histories. After each exchange the turns that no longer fit
`spec.limits.memoryMaxTokens` (counted from the newest; tokens estimated at four characters
each) are deleted.
"""

from __future__ import annotations

import asyncpg

from agent_api.db import queries
from agent_runtime.ai import providers, redaction


class Memory:
    def __init__(self, pool: asyncpg.Pool, namespace: str, cluster: str, replica: str,
                 budget_tokens: int) -> None:
        self._pool = pool
        self._key = (namespace, cluster, replica)
        self.budget_tokens = budget_tokens

    async def load(self, conversation_id: str) -> list[providers.Message]:
        """The newest turns that fit the budget, oldest first."""
        rows = await self._pool.fetch(queries.SQL["LoadConversation"], *self._key,
                                      conversation_id, self.budget_tokens)
        return [providers.Message(row["role"], row["content"]) for row in rows]

    async def append(self, conversation_id: str, user_text: str, reply: str) -> None:
        """Store one exchange and drop what no longer fits, in one transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            for role, text in (("user", user_text), ("assistant", reply)):
                text = redaction.scrub(text)
                await conn.execute(queries.SQL["AppendTurn"], *self._key, conversation_id, role,
                                   text, providers.estimate_tokens(text))
            await conn.execute(queries.SQL["TrimConversation"], *self._key, conversation_id,
                               self.budget_tokens)
