-- The tables with the most dead rows (for the metrics endpoint): cheap, statistics only.
SELECT s.schemaname || '.' || s.relname AS table_name,
       s.n_dead_tup
  FROM pg_catalog.pg_stat_all_tables AS s
 WHERE s.schemaname NOT IN ('pg_catalog', 'information_schema')
   AND s.schemaname NOT LIKE 'pg\_toast%%'
   AND s.n_dead_tup > 0
 ORDER BY s.n_dead_tup DESC, s.relid
 LIMIT %(top)s
