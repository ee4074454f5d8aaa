-- The schema an extension is installed in, if it is installed in this database.
SELECT n.nspname AS schema
  FROM pg_catalog.pg_extension AS e
  JOIN pg_catalog.pg_namespace AS n ON n.oid = e.extnamespace
 WHERE e.extname = %(name)s
