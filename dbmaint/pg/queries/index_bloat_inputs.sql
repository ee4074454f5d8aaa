-- Every index with what a btree bloat estimate needs: its pages and tuples, fillfactor (in reloptions),
-- and the average width and null fraction of its columns from pg_stats. Expression columns and columns
-- of type "name" have no usable width: they are counted in missing_stats and the estimate is not made.
SELECT ci.oid::bigint AS index_oid,
       t.oid::bigint AS table_oid,
       n.nspname AS schema,
       ci.relname AS name,
       t.relname AS table_name,
       am.amname AS method,
       ci.relpages::bigint AS relpages,
       ci.reltuples::float8 AS reltuples,
       -- relpages, not pg_relation_size(), which would wait for a lock held on the index.
       (ci.relpages::bigint * pg_catalog.current_setting('block_size')::bigint) AS size_bytes,
       coalesce(ci.reloptions, '{}') AS reloptions,
       i.indisvalid AS is_valid,
       n.nspname = 'pg_catalog' AS is_catalog,
       EXISTS (SELECT 1 FROM pg_catalog.pg_constraint AS x
                WHERE x.conindid = ci.oid AND x.contype = 'x') AS is_exclusion,
       pg_catalog.current_setting('block_size')::int AS block_size,
       coalesce(st.missing_stats, 0)::int AS missing_stats,
       coalesce(st.data_width, 0)::float8 AS data_width,
       coalesce(st.max_null_frac, 0)::float8 AS max_null_frac,
       (CASE WHEN ci.reltablespace = 0
             THEN (SELECT d.dattablespace FROM pg_catalog.pg_database AS d
                    WHERE d.datname = pg_catalog.current_database())
             ELSE ci.reltablespace END)::bigint AS tablespace_oid,
       -- REINDEX INDEX needs the index's owner (the table's), or a role that inherits it.
       pg_catalog.pg_has_role(ci.relowner, 'USAGE') AS can_maintain
  FROM pg_catalog.pg_index AS i
  JOIN pg_catalog.pg_class AS ci ON ci.oid = i.indexrelid
  JOIN pg_catalog.pg_class AS t ON t.oid = i.indrelid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = ci.relnamespace
  JOIN pg_catalog.pg_am AS am ON am.oid = ci.relam
  LEFT JOIN LATERAL (
        SELECT count(*) FILTER (WHERE s.avg_width IS NULL OR a.atttypid = 'pg_catalog.name'::pg_catalog.regtype)
                   AS missing_stats,
               sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 0)) AS data_width,
               max(coalesce(s.null_frac, 0)) AS max_null_frac
          FROM pg_catalog.unnest(i.indkey::int2[]) AS k(attnum)
          LEFT JOIN pg_catalog.pg_attribute AS a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
          LEFT JOIN pg_catalog.pg_stats AS s
                 ON s.schemaname = n.nspname AND s.tablename = t.relname AND s.attname = a.attname
                AND NOT s.inherited
       ) AS st ON true
 WHERE ci.relkind = 'i'
   AND ci.relpersistence <> 't'
   AND n.nspname <> 'information_schema'
   AND n.nspname NOT LIKE 'pg\_toast%%'
   AND n.nspname NOT LIKE 'pg\_temp\_%%'
 ORDER BY n.nspname, ci.relname
