-- CHECK and FOREIGN KEY constraints added NOT VALID and never validated: rows written before they were
-- added are not known to satisfy them, and the planner cannot rely on a CHECK one (constraint exclusion).
-- Only where VALIDATE CONSTRAINT is to be run: a foreign key a partition inherits (conparentid) and a CHECK
-- a child table inherits (not conislocal) are validated with their parent's. Domain constraints are left
-- out: ALTER DOMAIN ... VALIDATE CONSTRAINT takes a SHARE lock, which blocks writes, on every table using it.
SELECT n.nspname AS schema,
       t.relname AS table_name,
       c.conname AS name,
       c.contype::text AS kind,
       -- relpages, not pg_relation_size(): that would wait for a lock on a table being altered.
       (t.relpages::bigint * pg_catalog.current_setting('block_size')::bigint) AS table_bytes,
       rn.nspname AS referenced_schema,
       r.relname AS referenced_table
  FROM pg_catalog.pg_constraint AS c
  JOIN pg_catalog.pg_class AS t ON t.oid = c.conrelid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = t.relnamespace
  LEFT JOIN pg_catalog.pg_class AS r ON r.oid = c.confrelid
  LEFT JOIN pg_catalog.pg_namespace AS rn ON rn.oid = r.relnamespace
 WHERE c.contype IN ('c', 'f')
   AND NOT c.convalidated
   AND c.conparentid = 0
   AND c.conislocal
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg\_temp\_%%'
 ORDER BY n.nspname, t.relname, c.conname
