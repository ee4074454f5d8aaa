-- Since when this database's statistics count: the last reset or, never reset, the database's creation
-- (the modification time of its PG_VERSION file, readable with pg_stat_file's privilege); and now.
SELECT d.stats_reset,
       CASE WHEN pg_catalog.has_function_privilege('pg_catalog.pg_stat_file(text, boolean)', 'EXECUTE')
            THEN (pg_catalog.pg_stat_file('base/' || d.datid || '/PG_VERSION', true)).modification
       END AS database_created,
       pg_catalog.now() AS collected_at
  FROM pg_catalog.pg_stat_database AS d
 WHERE d.datname = pg_catalog.current_database()
