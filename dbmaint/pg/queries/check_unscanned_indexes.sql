-- Indexes not scanned since the statistics began counting that an unused-index verdict could be about
-- (valid, not unique); the advisor's findings name the ones it can call unused: none while the statistics
-- are too young to tell, and this count says whether that silence means anything.
SELECT count(*)::bigint AS unscanned
  FROM pg_catalog.pg_stat_user_indexes AS s
  JOIN pg_catalog.pg_index AS i ON i.indexrelid = s.indexrelid
 WHERE s.idx_scan = 0
   AND i.indisvalid
   AND NOT i.indisunique
