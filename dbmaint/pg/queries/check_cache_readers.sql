-- The five tables and the five indexes that read the most blocks from outside shared_buffers since the
-- statistics reset: where a low cache hit rate comes from.
(SELECT 'table' AS kind, s.schemaname AS schema, s.relname AS name,
        coalesce(s.heap_blks_read, 0)::bigint AS blocks_read, coalesce(s.heap_blks_hit, 0)::bigint AS blocks_hit
   FROM pg_catalog.pg_statio_user_tables AS s
  WHERE s.heap_blks_read > 0
  ORDER BY s.heap_blks_read DESC, s.schemaname, s.relname
  LIMIT 5)
UNION ALL
(SELECT 'index', s.schemaname, s.indexrelname,
        coalesce(s.idx_blks_read, 0)::bigint, coalesce(s.idx_blks_hit, 0)::bigint
   FROM pg_catalog.pg_statio_user_indexes AS s
  WHERE s.idx_blks_read > 0
  ORDER BY s.idx_blks_read DESC, s.schemaname, s.indexrelname
  LIMIT 5)
