-- Invalid indexes, whether their name is a leftover of a failed REINDEX CONCURRENTLY (_ccnew, _ccold,
-- with an optional number), and whether an index build is running on their table right now.
SELECT ci.oid::bigint AS index_oid,
       n.nspname AS schema,
       ci.relname AS name,
       t.relname AS table_name,
       t.oid::bigint AS table_oid,
       (ci.relpages::bigint * pg_catalog.current_setting('block_size')::bigint) AS size_bytes,
       ci.relname ~ '_cc(new|old)[0-9]*$' AS is_concurrent_leftover,
       EXISTS (SELECT 1 FROM pg_catalog.pg_stat_progress_create_index AS p
                WHERE p.relid = t.oid AND p.datid = (SELECT oid FROM pg_catalog.pg_database
                                                      WHERE datname = pg_catalog.current_database()))
           AS build_running
  FROM pg_catalog.pg_index AS i
  JOIN pg_catalog.pg_class AS ci ON ci.oid = i.indexrelid
  JOIN pg_catalog.pg_class AS t ON t.oid = i.indrelid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = ci.relnamespace
 WHERE NOT i.indisvalid
   AND (%(table_oid)s::bigint IS NULL OR t.oid = %(table_oid)s::bigint)
 ORDER BY n.nspname, ci.relname
