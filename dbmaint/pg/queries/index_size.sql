-- The current size of an index by name (REINDEX CONCURRENTLY gives the rebuilt index a new OID).
SELECT pg_catalog.pg_relation_size(c.oid) AS size_bytes
  FROM pg_catalog.pg_class AS c
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relname = %(name)s AND c.relkind = 'i'
