-- Tables and materialized views with what decides whether they need VACUUM or ANALYZE.
-- The toast table's frozen XID counts too: VACUUM of the table processes its toast table.
SELECT c.oid::bigint AS relid,
       n.nspname AS schema,
       c.relname AS name,
       n.nspname = 'pg_catalog' AS is_catalog,
       c.reltuples::float8 AS reltuples,
       c.relpages::bigint AS relpages,
       c.relallvisible::bigint AS relallvisible,
       -- Sizes from relpages, not pg_table_size(): that would wait for a lock on a busy table.
       ((c.relpages + coalesce(t.relpages, 0))::bigint
        * pg_catalog.current_setting('block_size')::bigint) AS size_bytes,
       coalesce(c.reloptions, '{}') AS reloptions,
       greatest(pg_catalog.age(c.relfrozenxid), coalesce(pg_catalog.age(t.relfrozenxid), 0))::bigint AS xid_age,
       greatest(pg_catalog.mxid_age(c.relminmxid), coalesce(pg_catalog.mxid_age(t.relminmxid), 0))::bigint
           AS mxid_age,
       coalesce(s.n_live_tup, 0) AS n_live_tup,
       coalesce(s.n_dead_tup, 0) AS n_dead_tup,
       coalesce(s.n_mod_since_analyze, 0) AS n_mod_since_analyze,
       coalesce(s.n_ins_since_vacuum, 0) AS n_ins_since_vacuum,
       greatest(s.last_vacuum, s.last_autovacuum) AS last_vacuum,
       greatest(s.last_analyze, s.last_autoanalyze) AS last_analyze,
       -- VACUUM and ANALYZE skip, with only a warning, tables this role may not maintain.
       (pg_catalog.pg_has_role(c.relowner, 'USAGE')
        OR (NOT c.relisshared AND pg_catalog.pg_has_role(d.datdba, 'USAGE'))) AS can_maintain
  FROM pg_catalog.pg_class AS c
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_class AS t ON t.oid = c.reltoastrelid
  LEFT JOIN pg_catalog.pg_stat_all_tables AS s ON s.relid = c.oid
  JOIN pg_catalog.pg_database AS d ON d.datname = pg_catalog.current_database()
 WHERE c.relkind IN ('r', 'm')
   AND c.relpersistence <> 't'
   AND n.nspname <> 'information_schema'
   AND n.nspname NOT LIKE 'pg\_toast%%'
   AND n.nspname NOT LIKE 'pg\_temp\_%%'
 ORDER BY n.nspname, c.relname
