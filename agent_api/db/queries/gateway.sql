-- name: ListStateKeys
-- Keys of one state scope with their sizes, without the values (the gateway lists, then reads).
SELECT key, size_bytes, updated_at FROM agent_state
WHERE namespace = $1 AND cluster = $2 AND replica = $3 ORDER BY key;

-- name: ClusterMembers
-- Every replica the cluster ever had, live or archived, for telling callers which is which.
SELECT replica, ordinal, archived_at FROM cluster_members
WHERE namespace = $1 AND cluster = $2 ORDER BY ordinal;
