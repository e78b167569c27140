-- A chat turn costs two statements (agent_runtime/ai/memory.py): BeginChatTurn before the
-- model is asked, FinishChatTurn (or FinishRun, when the turn did not complete) after. Each is
-- one round trip and its own transaction; nothing is held open while the model works.

-- name: BeginChatTurn
-- Records the turn's run as running and reads what the turn needs, in one statement: the
-- replica's newest turns of the conversation whose tokens add up to at most $6 (oldest first,
-- as arrays: one row whatever the history) and the replica's system prompt override (state
-- key $7, raw JSON or NULL). The replica is in every WHERE clause: replicas never see each
-- other's memory. The read CTEs see the snapshot taken at the statement's start, which the
-- run's INSERT does not touch.
WITH run AS (
    INSERT INTO runs (namespace, cluster, replica, trigger, function)
    VALUES ($1, $2, $3, 'chat', 'chat')
    RETURNING id
), history AS (
    SELECT id, role, content FROM (
        SELECT id, role, content,
               sum(tokens) OVER (ORDER BY id DESC ROWS UNBOUNDED PRECEDING) AS newer_tokens
        FROM conversation_turns
        WHERE namespace = $1 AND cluster = $2 AND replica = $3 AND conversation_id = $4
    ) AS turns
    WHERE newer_tokens <= $6
)
SELECT run.id AS run_id,
       (SELECT coalesce(array_agg(role ORDER BY id), '{}') FROM history) AS roles,
       (SELECT coalesce(array_agg(content ORDER BY id), '{}') FROM history) AS contents,
       (SELECT value FROM agent_state
        WHERE namespace = $1 AND cluster = $2 AND replica = $3 AND key = $5) AS system_prompt
FROM run;

-- name: FinishChatTurn
-- A completed turn: finishes its run ($1..$4 as FinishRun), stores the exchange and trims the
-- conversation to the budget $13 tokens counted from the newest, in one statement, so one
-- transaction. The DELETE's snapshot does not contain the two turns this statement inserts;
-- they are the newest, so their tokens ($10 user, $12 assistant) are added to what every older
-- turn has above it, and a new turn is inserted only if it fits itself (the budget counted from
-- the newest, as for the old turns): exactly the turns a trim after the insert would keep.
-- Under concurrency: two turns of one conversation on one replica at once each trim what they
-- see committed (READ COMMITTED); a row the other already deleted is skipped, never an error.
WITH finished AS (
    UPDATE runs SET status = $2, error = $3, output = $4::jsonb, finished_at = now()
    WHERE id = $1
    RETURNING id
), stored AS (
    INSERT INTO conversation_turns (namespace, cluster, replica, conversation_id, role, content, tokens)
    SELECT $5, $6, $7, $8, turn.role, turn.content, turn.tokens
    FROM (VALUES (1, 'user', $9::text, $10::integer, $10::integer + $12::integer),
                 (2, 'assistant', $11::text, $12::integer, $12::integer))
         AS turn (position, role, content, tokens, newer_tokens)
    WHERE turn.newer_tokens <= $13
    ORDER BY turn.position
    RETURNING id
), trimmed AS (
    DELETE FROM conversation_turns WHERE id IN (
        SELECT id FROM (
            SELECT id, sum(tokens) OVER (ORDER BY id DESC ROWS UNBOUNDED PRECEDING) AS newer_tokens
            FROM conversation_turns
            WHERE namespace = $5 AND cluster = $6 AND replica = $7 AND conversation_id = $8
        ) AS turns
        WHERE newer_tokens + $10 + $12 > $13
    )
    RETURNING id
)
SELECT (SELECT count(*) FROM finished) AS finished,
       (SELECT count(*) FROM stored) AS stored,
       (SELECT count(*) FROM trimmed) AS trimmed;
