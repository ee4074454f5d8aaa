-- Tables big enough for autovacuum's settings to matter, with their churn since they were last vacuumed:
-- dead tuples and inserts counted since then, over the time since then, are their current rates
-- (cumulative counters would need a known origin, which PostgreSQL 15 no longer gives once statistics
-- survive a restart). Tables never vacuumed have no rate yet.
SELECT n.nspname AS schema,
       c.relname AS name,
       c.reltuples::float8 AS reltuples,
       coalesce(c.reloptions, '{}') AS reloptions,
       s.n_dead_tup AS n_dead_tup,
       s.n_ins_since_vacuum AS n_ins_since_vacuum,
       extract(epoch FROM pg_catalog.now() - greatest(s.last_vacuum, s.last_autovacuum))::float8 AS observed_s,
       s.autovacuum_count AS autovacuum_count
  FROM pg_catalog.pg_class AS c
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_stat_user_tables AS s ON s.relid = c.oid
 WHERE c.relkind IN ('r', 'm')
   AND c.reltuples >= 10000
   AND greatest(s.last_vacuum, s.last_autovacuum) IS NOT NULL
 ORDER BY n.nspname, c.relname
