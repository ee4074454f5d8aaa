-- The statements of this database that pg_stat_statements recorded, heaviest first, dbmaint's own left out
-- before the limit (their text as dbmaint.pg.own_statements tells them apart: its marker, or the EXPLAIN and
-- PREPARE/EXECUTE/DEALLOCATE dbmaint_* wrappers). A capture's EXPLAIN ANALYZE of slow statements is as
-- heavy as they are, and would otherwise take the places of the application's heaviest statements.
SELECT s.queryid,
       s.query,
       s.calls,
       s.total_exec_time::float8 AS total_time_ms,
       s.mean_exec_time::float8 AS mean_time_ms,
       s.rows
  FROM {schema}.pg_stat_statements AS s
 WHERE s.dbid = (SELECT d.oid FROM pg_catalog.pg_database AS d WHERE d.datname = pg_catalog.current_database())
   AND s.query !~* '^\s*(/\* dbmaint \*/|(/\*.*?\*/\s*)*(EXPLAIN\M|(PREPARE|EXECUTE)\s+"?dbmaint_|DEALLOCATE\s+(PREPARE\s+)?"?dbmaint_))'
 ORDER BY s.total_exec_time DESC
 LIMIT %(limit)s
