-- Since when this database's statistics count (NULL: never reset, so since the cluster was created), and now.
SELECT d.stats_reset,
       pg_catalog.now() AS collected_at
  FROM pg_catalog.pg_stat_database AS d
 WHERE d.datname = pg_catalog.current_database()
