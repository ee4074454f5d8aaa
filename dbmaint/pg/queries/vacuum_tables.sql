-- Tables and materialized views with what decides whether they need VACUUM or ANALYZE.
-- The toast table's frozen XID counts too: VACUUM of the table processes its toast table.
-- The statistics come from the functions behind pg_stat_all_tables: the view sums index scans over every
-- relation of the database first (10 ms of the 12 on 500 tables).
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
       pg_catalog.pg_stat_get_live_tuples(c.oid) AS n_live_tup,
       pg_catalog.pg_stat_get_dead_tuples(c.oid) AS n_dead_tup,
       pg_catalog.pg_stat_get_mod_since_analyze(c.oid) AS n_mod_since_analyze,
       pg_catalog.pg_stat_get_ins_since_vacuum(c.oid) AS n_ins_since_vacuum,
       greatest(pg_catalog.pg_stat_get_last_vacuum_time(c.oid),
                pg_catalog.pg_stat_get_last_autovacuum_time(c.oid)) AS last_vacuum,
       greatest(pg_catalog.pg_stat_get_last_analyze_time(c.oid),
                pg_catalog.pg_stat_get_last_autoanalyze_time(c.oid)) AS last_analyze,
       -- VACUUM and ANALYZE skip, with only a warning, tables this role may not maintain.
       (pg_catalog.pg_has_role(c.relowner, 'USAGE')
        OR (NOT c.relisshared AND pg_catalog.pg_has_role(d.datdba, 'USAGE'))) AS can_maintain
  FROM pg_catalog.pg_class AS c
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_class AS t ON t.oid = c.reltoastrelid
  JOIN pg_catalog.pg_database AS d ON d.datname = pg_catalog.current_database()
 WHERE c.relkind IN ('r', 'm')
   AND c.relpersistence <> 't'
   AND n.nspname <> 'information_schema'
   AND n.nspname NOT LIKE 'pg\_toast%%'
   AND n.nspname NOT LIKE 'pg\_temp\_%%'
 ORDER BY n.nspname, c.relname
