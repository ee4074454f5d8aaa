-- The definitions of some indexes as PostgreSQL prints them, for display and re-creation. pg_get_indexdef()
-- and pg_get_expr() take a lock on the table, so tables with an ACCESS EXCLUSIVE lock held or requested are
-- left out (a request queued ahead of ours would make us wait too); the caller adds a short lock_timeout.
WITH blocked AS MATERIALIZED (
    SELECT l.relation
      FROM pg_catalog.pg_locks AS l
     WHERE l.locktype = 'relation'
       AND l.mode = 'AccessExclusiveLock'
       AND l.database = (SELECT d.oid FROM pg_catalog.pg_database AS d
                          WHERE d.datname = pg_catalog.current_database())
)
SELECT i.indexrelid::bigint AS index_oid,
       pg_catalog.pg_get_indexdef(i.indexrelid) AS definition,
       ARRAY(SELECT pg_catalog.pg_get_indexdef(i.indexrelid, k, false)
               FROM pg_catalog.generate_series(1, i.indnkeyatts) AS k ORDER BY k) AS key_columns,
       pg_catalog.pg_get_expr(i.indpred, i.indrelid) AS predicate
  FROM pg_catalog.pg_index AS i
 WHERE i.indexrelid = ANY (%(index_oids)s::bigint[]::pg_catalog.oid[])
   AND i.indrelid NOT IN (SELECT b.relation FROM blocked AS b)
   AND i.indexrelid NOT IN (SELECT b.relation FROM blocked AS b)
