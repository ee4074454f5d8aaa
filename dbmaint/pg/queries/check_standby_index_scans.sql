-- Run on a standby: the scans of every user index there, by schema and name (the names, like the OIDs, are
-- the primary's on a physical standby), a partitioned index with the scans of its partitions' indexes as the
-- advisor counts them on the primary (advisor_indexes.sql). A standby counts its own scans only, and only
-- since it last started: a standby replays WAL from its start and discards its statistics then (PostgreSQL
-- 15 keeps them across a clean restart of a primary only), so counting_since is the later of the reset and
-- the start. Counters and catalogs only: nothing here waits for a lock.
WITH RECURSIVE tree AS (
    SELECT i.indexrelid AS root, i.indexrelid AS relid
      FROM pg_catalog.pg_index AS i
    UNION ALL
    SELECT tree.root, h.inhrelid
      FROM tree
      JOIN pg_catalog.pg_inherits AS h ON h.inhparent = tree.relid
),
scans AS (
    SELECT tree.root, coalesce(sum(s.idx_scan), 0)::bigint AS idx_scan
      FROM tree
      JOIN pg_catalog.pg_stat_user_indexes AS s ON s.indexrelid = tree.relid
     GROUP BY tree.root
)
SELECT n.nspname AS schema,
       c.relname AS name,
       scans.idx_scan,
       greatest((SELECT d.stats_reset FROM pg_catalog.pg_stat_database AS d
                  WHERE d.datname = pg_catalog.current_database()),
                pg_catalog.pg_postmaster_start_time()) AS counting_since,
       pg_catalog.now() AS collected_at
  FROM scans
  JOIN pg_catalog.pg_class AS c ON c.oid = scans.root
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
 ORDER BY n.nspname, c.relname
