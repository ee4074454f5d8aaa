-- The tables with a foreign key to a table of these names: their keys and indexes decide what a DELETE or
-- an UPDATE of a named table costs (each deleted row looks up its referencing rows).
SELECT DISTINCT t.relname AS name
  FROM pg_catalog.pg_constraint AS k
  JOIN pg_catalog.pg_class AS t ON t.oid = k.conrelid
  JOIN pg_catalog.pg_class AS r ON r.oid = k.confrelid
 WHERE k.contype = 'f'
   AND r.relname = ANY(%(names)s::text[])
