-- Dead rows left in the tables a vacuum pass just vacuumed, read once after the pass: VACUUM reports its
-- counts to the statistics as it ends, and each autocommit statement reads them afresh.
SELECT s.relid, coalesce(s.n_dead_tup, 0) AS n_dead_tup
  FROM pg_catalog.pg_stat_all_tables AS s
 WHERE s.relid = ANY(%(relids)s)
