-- What the benchmarks read from PostgreSQL itself: load per database, the server's settings.
-- Run from the `postgres` database, so the measuring connection is not counted.

-- name: DatabaseActivity
-- Cumulative counters of one database (flushed by each backend at most once a second and
-- at the latest 10 s after it goes idle, so a rate needs a window of tens of seconds), and
-- its connections right now.
SELECT d.xact_commit + d.xact_rollback AS transactions,
       d.tup_inserted + d.tup_updated + d.tup_deleted AS rows_written,
       (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = $1) AS connections,
       (SELECT wal_bytes FROM pg_stat_wal)::bigint AS wal_bytes,
       clock_timestamp() AS at
FROM pg_stat_database d
WHERE d.datname = $1;

-- name: ServerSettings
SELECT current_setting('server_version') AS server_version,
       current_setting('fsync') AS fsync,
       current_setting('synchronous_commit') AS synchronous_commit,
       current_setting('full_page_writes') AS full_page_writes,
       current_setting('shared_buffers') AS shared_buffers,
       current_setting('max_connections') AS max_connections;

-- name: ClockNow
-- The database's wall clock (not the transaction's start), to time against rows' timestamps.
SELECT clock_timestamp();

-- name: TableWrites
-- Rows written so far per table of the connected database (user tables only: the catalogs'
-- writes, autovacuum's ANALYZE into pg_statistic for one, are in pg_stat_database alone).
SELECT relname AS table_name, n_tup_ins + n_tup_upd + n_tup_del AS rows_written
FROM pg_stat_user_tables;
