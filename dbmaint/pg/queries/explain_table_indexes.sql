-- The indexes of some tables.
SELECT i.indrelid::bigint AS table_oid, i.indexrelid::bigint AS index_oid
  FROM pg_catalog.pg_index AS i
 WHERE i.indrelid = ANY (%(table_oids)s::bigint[]::pg_catalog.oid[])
 ORDER BY i.indrelid, i.indexrelid
