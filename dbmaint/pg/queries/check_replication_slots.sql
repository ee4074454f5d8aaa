-- Replication slots, and the WAL each one keeps on disk (check item replication_slots). A slot keeps every WAL
-- segment its consumer has not confirmed, however long that consumer has been gone: an abandoned slot fills
-- pg_wal until the server stops, unless max_slot_wal_keep_size lets the slot be "lost" instead.
WITH wal AS (
    -- Where WAL ends now. pg_current_wal_lsn() raises on a standby ("recovery is in progress"): there, the
    -- furthest position received from upstream or replayed (received is NULL when restoring from an archive).
    -- CASE evaluates only the branch taken, and these functions are volatile: none is folded beforehand.
    SELECT pg_catalog.pg_is_in_recovery() AS in_recovery,
           CASE WHEN pg_catalog.pg_is_in_recovery()
                THEN greatest(pg_catalog.pg_last_wal_receive_lsn(), pg_catalog.pg_last_wal_replay_lsn())
                ELSE pg_catalog.pg_current_wal_lsn()
           END AS end_lsn
)
SELECT s.slot_name::text AS slot_name,
       s.slot_type,
       s.plugin::text AS plugin,
       s.database::text AS database,
       s.temporary,
       s.active,
       s.active_pid,
       -- How long the consumer has been connected (its walsender's, or backend's, start); NULL without
       -- pg_read_all_stats. PostgreSQL 15 does not record since when an inactive slot has been inactive.
       extract(epoch FROM pg_catalog.now() - a.backend_start)::float8 AS active_s,
       s.wal_status,
       s.safe_wal_size,
       -- NULL when the slot reserves no WAL (created without reserving it, or lost: its restart_lsn is then
       -- cleared), or when a standby knows no WAL position yet.
       greatest(pg_catalog.pg_wal_lsn_diff(w.end_lsn, s.restart_lsn), 0)::bigint AS retained_bytes,
       w.in_recovery,
       pg_catalog.current_setting('max_slot_wal_keep_size') AS max_slot_wal_keep_size
  FROM pg_catalog.pg_replication_slots AS s
 CROSS JOIN wal AS w
  LEFT JOIN pg_catalog.pg_stat_activity AS a ON a.pid = s.active_pid
 ORDER BY retained_bytes DESC NULLS LAST, s.slot_name
