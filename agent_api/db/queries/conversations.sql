-- name: AppendTurn
INSERT INTO conversation_turns (namespace, cluster, replica, conversation_id, role, content, tokens)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id;

-- name: LoadConversation
-- The newest turns of one replica's conversation whose tokens add up to at most $5, oldest
-- first. The replica is in the WHERE clause: replicas never see each other's memory.
SELECT role, content, tokens FROM (
    SELECT id, role, content, tokens,
           sum(tokens) OVER (ORDER BY id DESC ROWS UNBOUNDED PRECEDING) AS newer_tokens
    FROM conversation_turns
    WHERE namespace = $1 AND cluster = $2 AND replica = $3 AND conversation_id = $4
) AS turns
WHERE newer_tokens <= $5
ORDER BY id;

-- name: TrimConversation
-- Deletes the turns that no longer fit the budget $5 (counted from the newest), so a long
-- conversation keeps a bounded footprint.
DELETE FROM conversation_turns WHERE id IN (
    SELECT id FROM (
        SELECT id, sum(tokens) OVER (ORDER BY id DESC ROWS UNBOUNDED PRECEDING) AS newer_tokens
        FROM conversation_turns
        WHERE namespace = $1 AND cluster = $2 AND replica = $3 AND conversation_id = $4
    ) AS turns
    WHERE newer_tokens > $5
);
