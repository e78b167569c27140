-- name: UpsertConfig
-- Generation fence: the conflict branch only writes a strictly newer generation, so two operator
-- workers racing with different generations converge on the newest, whatever their order.
INSERT INTO cluster_configs (namespace, cluster, generation, spec)
VALUES ($1, $2, $3, $4::jsonb)
ON CONFLICT (namespace, cluster) DO UPDATE
SET generation = EXCLUDED.generation, spec = EXCLUDED.spec, updated_at = now()
WHERE cluster_configs.generation < EXCLUDED.generation
RETURNING generation;

-- name: NotifyConfig
-- Delivered at commit, so a listener that wakes up always reads the committed spec.
SELECT pg_notify('agent_config', $1);

-- name: LoadConfig
SELECT generation, spec FROM cluster_configs WHERE namespace = $1 AND cluster = $2;
