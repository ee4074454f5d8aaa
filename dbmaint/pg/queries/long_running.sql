-- Statements running for longer than a threshold right now: the slowest ones, which pg_stat_statements
-- records only when (if ever) they complete.
SELECT a.query,
       extract(epoch FROM pg_catalog.now() - a.query_start)::float8 * 1000 AS running_ms
  FROM pg_catalog.pg_stat_activity AS a
 WHERE a.state = 'active'
   AND a.backend_type = 'client backend'
   AND a.pid <> pg_catalog.pg_backend_pid()
   AND a.datname = pg_catalog.current_database()
   AND a.query_start < pg_catalog.now() - pg_catalog.make_interval(secs => %(threshold_s)s)
 ORDER BY a.query_start
