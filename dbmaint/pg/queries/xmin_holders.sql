-- What holds back the xmin horizon, oldest first: sessions, replication slots, prepared transactions.
SELECT 'session' AS kind,
       format('pid %%s (user %%s, application %%L, %%s since %%s)', a.pid, a.usename, a.application_name,
              coalesce(a.state, 'unknown'),
              date_trunc('second', coalesce(a.xact_start, a.backend_start))) AS holder,
       pg_catalog.age(coalesce(a.backend_xmin, a.backend_xid))::bigint AS xmin_age,
       extract(epoch FROM pg_catalog.now() - coalesce(a.xact_start, a.backend_start))::float8 AS held_s
  FROM pg_catalog.pg_stat_activity AS a
 WHERE coalesce(a.backend_xmin, a.backend_xid) IS NOT NULL
   AND a.pid <> pg_catalog.pg_backend_pid()
   AND a.datname IS NOT DISTINCT FROM pg_catalog.current_database()
UNION ALL
SELECT 'replication slot',
       format('slot %%I (%%s, %%s)', s.slot_name, s.slot_type, CASE WHEN s.active THEN 'active' ELSE 'inactive' END),
       greatest(pg_catalog.age(s.xmin), pg_catalog.age(s.catalog_xmin))::bigint,
       NULL
  FROM pg_catalog.pg_replication_slots AS s
 WHERE s.xmin IS NOT NULL OR s.catalog_xmin IS NOT NULL
UNION ALL
SELECT 'prepared transaction',
       format('gid %%L (owner %%s, prepared at %%s)', p.gid, p.owner, date_trunc('second', p.prepared)),
       pg_catalog.age(p.transaction)::bigint,
       extract(epoch FROM pg_catalog.now() - p.prepared)::float8
  FROM pg_catalog.pg_prepared_xacts AS p
UNION ALL
SELECT 'standby feedback',
       format('standby %%s (%%s)', coalesce(r.application_name, ''), r.client_addr),
       pg_catalog.age(r.backend_xmin)::bigint,
       NULL
  FROM pg_catalog.pg_stat_replication AS r
 WHERE r.backend_xmin IS NOT NULL
 ORDER BY xmin_age DESC NULLS LAST
