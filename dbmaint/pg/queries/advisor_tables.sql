-- User tables (ordinary and partitioned) for the schema advisor: primary key or not, and the size and write
-- counts that rank its findings. A partitioned table counts the rows, pages and writes of its partitions.
-- Sizes from relpages, not pg_table_size(): that would wait for a lock held on a busy table.
WITH RECURSIVE user_tables AS (
    SELECT c.oid, n.nspname, c.relname, c.relkind, c.relispartition
      FROM pg_catalog.pg_class AS c
      JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p')
       AND c.relpersistence <> 't'
       AND n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname NOT LIKE 'pg\_toast%%'
       AND n.nspname NOT LIKE 'pg\_temp\_%%'
       AND (%(names)s::text[] IS NULL OR c.relname = ANY(%(names)s::text[]))  -- NULL: every table
),
tree AS (
    SELECT u.oid AS root, u.oid AS relid, u.relkind
      FROM user_tables AS u
    UNION ALL
    -- Down through partitioned tables only: children by legacy inheritance are tables of their own.
    SELECT tree.root, h.inhrelid, c.relkind
      FROM tree
      JOIN pg_catalog.pg_inherits AS h ON h.inhparent = tree.relid
      JOIN pg_catalog.pg_class AS c ON c.oid = h.inhrelid
     WHERE tree.relkind = 'p'
),
totals AS (
    SELECT tree.root,
           count(*) FILTER (WHERE tree.root <> tree.relid AND tree.relkind = 'r')::int AS partitions,
           coalesce(sum(greatest(l.reltuples, 0)) FILTER (WHERE l.relkind = 'r'), 0)::float8 AS reltuples,
           coalesce(sum(l.relpages) FILTER (WHERE l.relkind = 'r'), 0)::bigint AS relpages,
           coalesce(sum(l.relpages + coalesce(toast.relpages, 0)) FILTER (WHERE l.relkind = 'r'), 0)::bigint
               AS pages_with_toast,
           coalesce(sum(s.n_tup_upd), 0)::bigint AS n_tup_upd,
           coalesce(sum(s.n_tup_del), 0)::bigint AS n_tup_del
      FROM tree
      JOIN pg_catalog.pg_class AS l ON l.oid = tree.relid
      LEFT JOIN pg_catalog.pg_class AS toast ON toast.oid = l.reltoastrelid
      LEFT JOIN pg_catalog.pg_stat_user_tables AS s ON s.relid = l.oid
     GROUP BY tree.root
)
SELECT u.oid::bigint AS relid,
       u.nspname AS schema,
       u.relname AS name,
       u.relkind = 'p' AS is_partitioned,
       u.relispartition AS is_partition,
       totals.partitions,
       totals.reltuples,
       totals.relpages,
       (totals.pages_with_toast * pg_catalog.current_setting('block_size')::bigint) AS size_bytes,
       totals.n_tup_upd,
       totals.n_tup_del,
       EXISTS (SELECT 1 FROM pg_catalog.pg_constraint AS k
                WHERE k.conrelid = u.oid AND k.contype = 'p') AS has_primary_key,
       -- Column names, not pg_get_partkeydef(), which would wait for a lock on the table.
       ARRAY(SELECT coalesce(a.attname::text, '(expression)')
               FROM pg_catalog.pg_partitioned_table AS pt
              CROSS JOIN LATERAL pg_catalog.unnest(pt.partattrs::int2[]) WITH ORDINALITY AS key(attnum, ord)
               LEFT JOIN pg_catalog.pg_attribute AS a ON a.attrelid = pt.partrelid AND a.attnum = key.attnum
              WHERE pt.partrelid = u.oid
              ORDER BY key.ord) AS partition_key,
       -- Tables an extension created are the extension's business, not the schema owner's.
       EXISTS (SELECT 1 FROM pg_catalog.pg_depend AS d
                WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = u.oid
                  AND d.deptype = 'e') AS extension_member
  FROM user_tables AS u
  JOIN totals ON totals.root = u.oid
 ORDER BY u.nspname, u.relname
