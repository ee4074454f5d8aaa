-- The databases of a server that a databases = "all" entry covers, as vacuumdb --all chooses them: every
-- database that allows connections, templates left out.
SELECT d.datname
  FROM pg_catalog.pg_database AS d
 WHERE d.datallowconn
   AND NOT d.datistemplate
 ORDER BY d.datname
