-- Dead rows left in one table, read right after its VACUUM finished.
SELECT coalesce(s.n_dead_tup, 0) AS n_dead_tup
  FROM pg_catalog.pg_stat_all_tables AS s
 WHERE s.relid = %(relid)s
