-- name: InsertChannelDelivery
INSERT INTO channel_deliveries (namespace, cluster, replica, channel, channel_type, run_id,
                                status, attempts, errors, message, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11)
RETURNING id;

-- name: ListChannelDeliveries
SELECT * FROM channel_deliveries
WHERE namespace = $1 AND cluster = $2 AND ($3::text IS NULL OR replica = $3)
ORDER BY id DESC
LIMIT $4;
