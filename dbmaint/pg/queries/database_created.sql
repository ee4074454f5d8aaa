-- When this database was created: the modification time of its PG_VERSION file. Run only by a role that
-- may call pg_stat_file (a guard inside the query would not do: EXECUTE is checked before it runs).
SELECT (pg_catalog.pg_stat_file('base/' || d.oid || '/PG_VERSION', true)).modification AS created
  FROM pg_catalog.pg_database AS d
 WHERE d.datname = pg_catalog.current_database()
