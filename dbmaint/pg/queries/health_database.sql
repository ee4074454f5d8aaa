-- The current database's wraparound horizon and the server's role (for the metrics endpoint).
SELECT pg_catalog.age(d.datfrozenxid) AS xid_age,
       pg_catalog.mxid_age(d.datminmxid) AS multixact_age,
       pg_catalog.pg_is_in_recovery() AS in_recovery
  FROM pg_catalog.pg_database AS d
 WHERE d.datname = pg_catalog.current_database()
