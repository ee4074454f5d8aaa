-- The indexes a drop revision names, by OID: their schema, name and table, and whether they are partitioned
-- (DROP INDEX CONCURRENTLY refuses those) or back a constraint (DROP INDEX refuses those).
SELECT c.oid::bigint AS index_oid,
       n.nspname AS schema,
       c.relname AS name,
       t.relname AS table_name,
       c.relkind = 'I' AS is_partitioned,
       EXISTS (SELECT FROM pg_catalog.pg_constraint AS k WHERE k.conindid = c.oid) AS backs_constraint
  FROM pg_catalog.pg_class AS c
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_index AS i ON i.indexrelid = c.oid
  JOIN pg_catalog.pg_class AS t ON t.oid = i.indrelid
 WHERE c.oid = ANY (%(index_oids)s::bigint[]::pg_catalog.oid[])
 ORDER BY n.nspname, c.relname
