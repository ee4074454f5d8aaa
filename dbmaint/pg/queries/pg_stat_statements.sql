-- The statements of this database that pg_stat_statements recorded, heaviest first.
SELECT s.queryid,
       s.query,
       s.calls,
       s.total_exec_time::float8 AS total_time_ms,
       s.mean_exec_time::float8 AS mean_time_ms,
       s.rows
  FROM {schema}.pg_stat_statements AS s
 WHERE s.dbid = (SELECT d.oid FROM pg_catalog.pg_database AS d WHERE d.datname = pg_catalog.current_database())
 ORDER BY s.total_exec_time DESC
 LIMIT %(limit)s
