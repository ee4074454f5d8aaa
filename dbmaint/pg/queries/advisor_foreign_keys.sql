-- Foreign keys on user tables, with their referencing columns in key order (names and attribute numbers).
-- The copies PostgreSQL makes on partitions (conparentid set) are left out: the parent's key stands for them.
SELECT k.oid::bigint AS constraint_oid,
       k.conname AS name,
       n.nspname AS schema,
       t.relname AS table_name,
       t.oid::bigint AS table_oid,
       ARRAY(SELECT a.attname::text
               FROM pg_catalog.unnest(k.conkey) WITH ORDINALITY AS key(attnum, ord)
               JOIN pg_catalog.pg_attribute AS a ON a.attrelid = k.conrelid AND a.attnum = key.attnum
              ORDER BY key.ord) AS columns,
       k.conkey::int[] AS attnums,
       rn.nspname AS referenced_schema,
       r.relname AS referenced_table,
       r.oid::bigint AS referenced_oid
  FROM pg_catalog.pg_constraint AS k
  JOIN pg_catalog.pg_class AS t ON t.oid = k.conrelid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = t.relnamespace
  JOIN pg_catalog.pg_class AS r ON r.oid = k.confrelid
  JOIN pg_catalog.pg_namespace AS rn ON rn.oid = r.relnamespace
 WHERE k.contype = 'f'
   AND k.conparentid = 0
   AND t.relpersistence <> 't'
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\_toast%%'
   AND n.nspname NOT LIKE 'pg\_temp\_%%'
   AND (%(names)s::text[] IS NULL OR t.relname = ANY(%(names)s::text[]))  -- NULL: the foreign keys of every table
 ORDER BY n.nspname, t.relname, k.conname
