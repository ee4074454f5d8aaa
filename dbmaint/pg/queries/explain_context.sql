-- Tables a plan reads (named schema.table, or table when the plan did not say), with what a developer
-- wants beside the plan: size, row estimate, last analyze and rows changed since, and the definitions of the
-- table's indexes. pg_get_indexdef() takes a lock on the table, so the definitions of a table with an ACCESS
-- EXCLUSIVE lock held or requested are left out (display only: never wait behind it); the caller adds a
-- short lock_timeout for a request that comes in after this looked, and asks again with %(definitions)s
-- false if that fires. The statistics come from the pg_stat_get_* functions of the view pg_stat_all_tables:
-- the view itself aggregates every relation of the database before the join (3-4 ms on 500 tables).
WITH blocked AS MATERIALIZED (
    SELECT l.relation
      FROM pg_catalog.pg_locks AS l
     WHERE %(definitions)s
       AND l.locktype = 'relation'
       AND l.mode = 'AccessExclusiveLock'
       AND l.database = (SELECT d.oid FROM pg_catalog.pg_database AS d
                          WHERE d.datname = pg_catalog.current_database())
)
SELECT n.nspname || '.' || c.relname AS relation,
       greatest(pg_catalog.pg_stat_get_last_analyze_time(c.oid),
                pg_catalog.pg_stat_get_last_autoanalyze_time(c.oid)) AS last_analyze,
       pg_catalog.pg_stat_get_mod_since_analyze(c.oid) AS n_mod_since_analyze,
       greatest(c.reltuples, 0)::float8 AS reltuples,
       (c.relpages::bigint * pg_catalog.current_setting('block_size')::bigint) AS size_bytes,
       CASE WHEN %(definitions)s AND c.oid NOT IN (SELECT b.relation FROM blocked AS b) THEN
           ARRAY(SELECT pg_catalog.pg_get_indexdef(i.indexrelid)
                   FROM pg_catalog.pg_index AS i
                  WHERE i.indrelid = c.oid
                    AND i.indexrelid NOT IN (SELECT b.relation FROM blocked AS b)
                  ORDER BY i.indexrelid)
       ELSE ARRAY[]::text[] END AS index_definitions
  FROM pg_catalog.pg_class AS c
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'm')
   AND (n.nspname || '.' || c.relname = ANY (%(names)s::text[])
        OR (c.relname = ANY (%(names)s::text[]) AND c.oid = pg_catalog.to_regclass(pg_catalog.quote_ident(c.relname))))
