-- The extensions installed in this database, with their schema: what the items can suggest or rely on
-- (pg_repack, pg_squeeze for heap_bloat).
SELECT e.extname AS name,
       n.nspname AS schema,
       e.extversion AS version
  FROM pg_catalog.pg_extension AS e
  JOIN pg_catalog.pg_namespace AS n ON n.oid = e.extnamespace
 ORDER BY e.extname
