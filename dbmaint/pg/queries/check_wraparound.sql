-- The transaction-ID and multixact ages of the database, then of its oldest tables: the five with the oldest
-- relfrozenxid and the five with the oldest relminmxid (often the same ones), for the xid_age item.
-- VACUUM moves the database's datfrozenxid / datminmxid up to its oldest table's.
WITH tables AS (
    -- A table's TOAST table is frozen by the table's VACUUM, so it counts as part of the table, under the
    -- table's name. Partitioned tables have no storage (relfrozenxid 0): their partitions are listed.
    SELECT n.nspname::text AS schema,
           c.relname::text AS name,
           greatest(pg_catalog.age(c.relfrozenxid), coalesce(pg_catalog.age(t.relfrozenxid), 0))::bigint
               AS xid_age,
           greatest(pg_catalog.mxid_age(c.relminmxid), coalesce(pg_catalog.mxid_age(t.relminmxid), 0))::bigint
               AS mxid_age,
           coalesce(pg_catalog.age(t.relfrozenxid) > pg_catalog.age(c.relfrozenxid)
                    OR pg_catalog.mxid_age(t.relminmxid) > pg_catalog.mxid_age(c.relminmxid), false) AS toast_oldest,
           -- Another session's temporary table: only that session can vacuum it.
           c.relpersistence = 't' AS temporary
      FROM pg_catalog.pg_class AS c
      JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
      LEFT JOIN pg_catalog.pg_class AS t ON t.oid = c.reltoastrelid
     WHERE c.relkind IN ('r', 'm')
)
-- Rows are told apart by kind: the database's, then its oldest tables'.
SELECT 'database' AS kind,
       NULL::text AS schema,
       d.datname::text AS name,
       pg_catalog.age(d.datfrozenxid)::bigint AS xid_age,
       pg_catalog.mxid_age(d.datminmxid)::bigint AS mxid_age,
       false AS toast_oldest,
       false AS temporary
  FROM pg_catalog.pg_database AS d
 WHERE d.datname = pg_catalog.current_database()
UNION ALL
SELECT 'table', oldest.schema, oldest.name, oldest.xid_age, oldest.mxid_age, oldest.toast_oldest, oldest.temporary
  FROM ((SELECT * FROM tables ORDER BY xid_age DESC, mxid_age DESC, schema, name LIMIT 5)
        UNION  -- a table in both lists once
        (SELECT * FROM tables ORDER BY mxid_age DESC, xid_age DESC, schema, name LIMIT 5)) AS oldest
