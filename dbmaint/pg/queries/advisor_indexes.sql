-- Every index on user tables and materialized views, with what the schema advisor compares: key columns
-- (attribute numbers, 0 for an expression, and names), operator classes, collations, sort options, INCLUDE
-- columns, expressions and predicate; the constraint or replica identity it backs, its scans since the
-- statistics reset and its size. A partitioned index counts the pages and scans of its partitions' indexes.
-- Nothing here may wait for a lock: sizes come from relpages (pg_relation_size() would wait), and expressions
-- and predicates are compared as stored node trees without their parse locations (pg_get_indexdef() and
-- pg_get_expr() lock the table).
WITH RECURSIVE user_indexes AS (
    SELECT i.*, ci.relname, ci.relkind, ci.relispartition, ci.xmin AS class_xmin, n.nspname,
           t.relname AS table_name, t.relkind AS table_relkind, am.amname
      FROM pg_catalog.pg_index AS i
      JOIN pg_catalog.pg_class AS ci ON ci.oid = i.indexrelid
      JOIN pg_catalog.pg_class AS t ON t.oid = i.indrelid
      JOIN pg_catalog.pg_namespace AS n ON n.oid = ci.relnamespace
      JOIN pg_catalog.pg_am AS am ON am.oid = ci.relam
     WHERE t.relkind IN ('r', 'p', 'm')
       AND t.relpersistence <> 't'
       AND n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname NOT LIKE 'pg\_toast%%'
       AND n.nspname NOT LIKE 'pg\_temp\_%%'
       AND (%(names)s::text[] IS NULL OR t.relname = ANY(%(names)s::text[]))  -- NULL: the indexes of every table
),
tree AS (
    SELECT u.indexrelid AS root, u.indexrelid AS relid
      FROM user_indexes AS u
    UNION ALL
    SELECT tree.root, h.inhrelid
      FROM tree
      JOIN pg_catalog.pg_inherits AS h ON h.inhparent = tree.relid
),
totals AS (
    SELECT tree.root,
           coalesce(sum(c.relpages) FILTER (WHERE c.relkind = 'i'), 0)::bigint AS relpages,
           coalesce(sum(s.idx_scan), 0)::bigint AS idx_scan
      FROM tree
      JOIN pg_catalog.pg_class AS c ON c.oid = tree.relid
      LEFT JOIN pg_catalog.pg_stat_user_indexes AS s ON s.indexrelid = tree.relid
     GROUP BY tree.root
)
SELECT u.indexrelid::bigint AS index_oid,
       u.indrelid::bigint AS table_oid,
       u.nspname AS schema,
       u.relname AS name,
       u.table_name,
       u.amname AS method,
       u.relkind = 'I' AS is_partitioned,
       u.relispartition AS is_partition,
       u.indisvalid AS is_valid,
       u.indisready AS is_ready,
       u.indisunique AS is_unique,
       u.indnullsnotdistinct AS nulls_not_distinct,
       ARRAY(SELECT u.indkey[k]::int
               FROM pg_catalog.generate_series(0, u.indnkeyatts - 1) AS k ORDER BY k) AS key_attnums,
       ARRAY(SELECT coalesce(a.attname::text, '(expression)')
               FROM pg_catalog.generate_series(0, u.indnkeyatts - 1) AS k
               LEFT JOIN pg_catalog.pg_attribute AS a ON a.attrelid = u.indrelid AND a.attnum = u.indkey[k]
              ORDER BY k) AS key_columns,
       ARRAY(SELECT u.indclass[k]::bigint
               FROM pg_catalog.generate_series(0, u.indnkeyatts - 1) AS k ORDER BY k) AS opclasses,
       ARRAY(SELECT u.indcollation[k]::bigint
               FROM pg_catalog.generate_series(0, u.indnkeyatts - 1) AS k ORDER BY k) AS collations,
       ARRAY(SELECT u.indoption[k]::int
               FROM pg_catalog.generate_series(0, u.indnkeyatts - 1) AS k ORDER BY k) AS options,
       ARRAY(SELECT a.attname::text
               FROM pg_catalog.generate_series(u.indnkeyatts, u.indnatts - 1) AS k
               JOIN pg_catalog.pg_attribute AS a ON a.attrelid = u.indrelid AND a.attnum = u.indkey[k]
              ORDER BY k) AS include_columns,
       pg_catalog.regexp_replace(u.indexprs::text, ' :location -?[0-9]+', '', 'g') AS expressions,
       pg_catalog.regexp_replace(u.indpred::text, ' :location -?[0-9]+', '', 'g') AS predicate,
       -- Every key column a plain NOT NULL column: a unique index like that can become the primary key.
       NOT EXISTS (SELECT 1
                     FROM pg_catalog.generate_series(0, u.indnkeyatts - 1) AS k
                     LEFT JOIN pg_catalog.pg_attribute AS a ON a.attrelid = u.indrelid AND a.attnum = u.indkey[k]
                    WHERE a.attnotnull IS NOT TRUE) AS key_not_null,
       -- Default operator class, the column's collation, ascending: what ADD PRIMARY KEY USING INDEX demands.
       NOT EXISTS (SELECT 1
                     FROM pg_catalog.generate_series(0, u.indnkeyatts - 1) AS k
                     LEFT JOIN pg_catalog.pg_attribute AS a ON a.attrelid = u.indrelid AND a.attnum = u.indkey[k]
                     LEFT JOIN pg_catalog.pg_opclass AS oc ON oc.oid = u.indclass[k]
                    WHERE u.indoption[k] <> 0
                       OR a.attcollation IS DISTINCT FROM u.indcollation[k]
                       OR oc.opcdefault IS NOT TRUE) AS key_default_sorting,
       con.conname::text AS constraint_name,
       con.contype::text AS constraint_type,
       -- A foreign key's conindid is the referenced table's unique index: dropping it is refused.
       EXISTS (SELECT 1 FROM pg_catalog.pg_constraint AS f
                WHERE f.conindid = u.indexrelid AND f.contype = 'f') AS referenced_by_foreign_key,
       u.indisreplident AS is_replica_identity,
       totals.idx_scan,
       (totals.relpages * pg_catalog.current_setting('block_size')::bigint) AS size_bytes,
       -- When its catalog row was last written (creation or rebuild): known with track_commit_timestamp only.
       CASE WHEN pg_catalog.current_setting('track_commit_timestamp')::bool
            THEN pg_catalog.pg_xact_commit_timestamp(u.class_xmin) END AS created_at,
       EXISTS (SELECT 1 FROM pg_catalog.pg_stat_progress_create_index AS p
                WHERE p.relid = u.indrelid
                  AND p.datid = (SELECT d.oid FROM pg_catalog.pg_database AS d
                                  WHERE d.datname = pg_catalog.current_database())) AS build_running,
       EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = u.indrelid
                  AND d.deptype = 'e') AS extension_member
  FROM user_indexes AS u
  JOIN totals ON totals.root = u.indexrelid
  LEFT JOIN LATERAL (
        SELECT k.conname, k.contype
          FROM pg_catalog.pg_constraint AS k
         WHERE k.conindid = u.indexrelid AND k.conrelid = u.indrelid AND k.contype IN ('p', 'u', 'x')
         LIMIT 1
       ) AS con ON true
 ORDER BY u.nspname, u.table_name, u.relname
