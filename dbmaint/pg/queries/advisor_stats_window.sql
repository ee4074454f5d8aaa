-- Since when this database's statistics count (stats_reset: NULL when never reset), and now.
SELECT d.stats_reset,
       NULL::timestamptz AS database_created,
       pg_catalog.now() AS collected_at
  FROM pg_catalog.pg_stat_database AS d
 WHERE d.datname = pg_catalog.current_database()
