-- Heap bloat of the user tables and materialized views: what the heap_bloat item judges.
--
-- The estimate is the well-known one from the statistics (ioguix's pgsql-bloat-estimation, table_bloat.sql,
-- as pgexperts' and check_postgres' before it): the width of an average row from pg_stats (avg_width and
-- null_frac of each column, the tuple header and null bitmap, MAXALIGN of 8), hence the rows a page holds at
-- the table's fillfactor and the pages a freshly written copy would take, its TOAST table counted at four
-- chunks a page; whatever the table has beyond that is wasted. Pages and rows come from relpages and
-- reltuples as the last VACUUM or ANALYZE left them: pg_relation_size() would wait for a lock on a table
-- being altered. A table one of whose columns has no statistics (never analysed, a column this role may not
-- read, a column of type "name" whose avg_width is wrong) is not estimated: has_stats is false.
--
-- Where pgstattuple is installed and this role may run it (pg_stat_scan_tables, or superuser), the three
-- tables the estimate finds the most wasteful (at 20%% or more: the configured thresholds are not known here,
-- the item judges them) are measured with pgstattuple_approx(): it reads their pages that are not all-visible
-- (the free space map stands for the others) under an ACCESS SHARE lock, which conflicts only with ACCESS
-- EXCLUSIVE; a table with such a lock held or awaited is left to the estimate rather than queued behind it.
-- pgstattuple may be in any schema, or absent: its function is called through query_to_xml(), which runs the
-- statement built here (schema quoted by format('%%I')) only for the rows that reach it.
WITH tables AS MATERIALIZED (
    SELECT t.oid AS table_oid,
           n.nspname AS schema,
           t.relname AS name,
           t.relpages::bigint AS heap_pages,
           t.reltuples::float8 AS reltuples,
           coalesce(toast.oid, 0::pg_catalog.oid) AS toast_oid,
           coalesce(toast.relpages, 0)::bigint AS toast_pages,
           -- A TOAST table not vacuumed yet (reltuples -1) cannot be estimated: it is then taken as it is.
           CASE WHEN coalesce(toast.reltuples, 0) < 0 THEN NULL
                ELSE coalesce(toast.reltuples, 0)::float8 END AS toast_tuples,
           coalesce((SELECT o.option_value::int
                       FROM pg_catalog.pg_options_to_table(t.reloptions) AS o
                      WHERE o.option_name = 'fillfactor'), 100) AS fillfactor,
           pg_catalog.current_setting('block_size')::int AS block_size,
           st.columns,
           st.columns_with_stats,
           st.has_name_column,
           st.max_null_frac,
           st.data_width
      FROM pg_catalog.pg_class AS t
      JOIN pg_catalog.pg_namespace AS n ON n.oid = t.relnamespace
      JOIN pg_catalog.pg_am AS am ON am.oid = t.relam
      LEFT JOIN pg_catalog.pg_class AS toast ON toast.oid = t.reltoastrelid
      CROSS JOIN LATERAL (
            SELECT count(*)::int AS columns,
                   count(s.avg_width)::int AS columns_with_stats,
                   coalesce(bool_or(a.atttypid = 'pg_catalog.name'::pg_catalog.regtype), false) AS has_name_column,
                   coalesce(max(s.null_frac), 0)::float8 AS max_null_frac,
                   coalesce(sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 0)), 0)::float8 AS data_width
              FROM pg_catalog.pg_attribute AS a
              LEFT JOIN pg_catalog.pg_stats AS s
                     ON s.schemaname = n.nspname AND s.tablename = t.relname AND s.attname = a.attname
                    AND NOT s.inherited
             WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
           ) AS st
     WHERE t.relkind IN ('r', 'm')
       AND t.relpersistence <> 't'
       -- On a standby an unlogged table has no data, only its init fork: pgstattuple cannot open it.
       AND NOT (t.relpersistence = 'u' AND pg_catalog.pg_is_in_recovery())
       AND am.amname = 'heap'  -- the page arithmetic below is the heap's, and so is pgstattuple_approx()
       AND t.relpages > 0
       AND n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname NOT LIKE 'pg\_toast%%'
       AND n.nspname NOT LIKE 'pg\_temp\_%%'
),
shapes AS (
    SELECT tables.*,
           tables.reltuples >= 0 AND tables.columns > 0 AND tables.columns_with_stats = tables.columns
               AND NOT tables.has_name_column AS has_stats,
           -- Line pointer (4) + tuple header (23, plus a null bitmap of a bit a column when any is NULL),
           -- MAXALIGNed, + the row's data, MAXALIGNed.
           4 + pg_catalog.ceil((23 + CASE WHEN tables.max_null_frac > 0
                                          THEN pg_catalog.ceil(tables.columns / 8.0) ELSE 0 END) / 8.0) * 8
             + pg_catalog.ceil(tables.data_width / 8.0) * 8 AS tuple_bytes
      FROM tables
),
estimates AS (
    SELECT shapes.*,
           shapes.heap_pages + shapes.toast_pages AS pages,
           CASE WHEN shapes.has_stats THEN
               -- Rows a page takes: the page less its header (24) and the share the fillfactor keeps free,
               -- at most MaxHeapTuplesPerPage.
               pg_catalog.ceil(shapes.reltuples / greatest(1, least(
                   (shapes.block_size - 24) / 28,
                   pg_catalog.floor((shapes.block_size - 24 - shapes.block_size * (100 - shapes.fillfactor) / 100.0)
                         / shapes.tuple_bytes))))
               + coalesce(pg_catalog.ceil(shapes.toast_tuples / 4), shapes.toast_pages)
           END AS expected_pages
      FROM shapes
),
wasted AS (
    SELECT estimates.*,
           coalesce(greatest(estimates.pages - estimates.expected_pages, 0), 0)::bigint AS wasted_pages
      FROM estimates
),
pgstattuple AS (
    -- pgstattuple_approx() came with pgstattuple 1.3; an older one counts as not installed.
    SELECT n.nspname AS schema,
           pg_catalog.has_function_privilege(p.oid, 'EXECUTE') AS allowed
      FROM pg_catalog.pg_extension AS e
      JOIN pg_catalog.pg_namespace AS n ON n.oid = e.extnamespace
      JOIN pg_catalog.pg_proc AS p
        ON p.pronamespace = e.extnamespace AND p.proname = 'pgstattuple_approx'
       AND p.pronargs = 1 AND p.proargtypes[0] = 'pg_catalog.regclass'::pg_catalog.regtype
     WHERE e.extname = 'pgstattuple'
),
candidates AS MATERIALIZED (
    SELECT w.table_oid, w.toast_oid, w.toast_pages, w.fillfactor,
           -- Queued behind an ACCESS EXCLUSIVE lock, the read would hold up every query behind it in turn.
           EXISTS (SELECT 1
                     FROM pg_catalog.pg_locks AS l
                    WHERE l.locktype = 'relation'
                      AND l.database = (SELECT d.oid FROM pg_catalog.pg_database AS d
                                         WHERE d.datname = pg_catalog.current_database())
                      AND l.relation IN (w.table_oid, w.toast_oid)
                      AND l.mode = 'AccessExclusiveLock') AS locked
      FROM wasted AS w
     WHERE w.has_stats
       AND w.wasted_pages > 0
       AND w.wasted_pages >= 0.2 * w.pages
     ORDER BY w.wasted_pages DESC, w.table_oid
     LIMIT 3  -- MEASURED in dbmaint/check/items/heap_bloat.py
),
measurable AS MATERIALIZED (
    SELECT c.table_oid, c.fillfactor, r.relid, r.relid = c.table_oid AS is_heap, p.schema
      FROM candidates AS c
      JOIN pgstattuple AS p ON p.allowed
      CROSS JOIN LATERAL (SELECT c.table_oid AS relid
                          UNION ALL
                          SELECT c.toast_oid WHERE c.toast_oid <> 0 AND c.toast_pages > 0) AS r
     WHERE NOT c.locked
),
measured AS (
    SELECT m.table_oid,
           sum((pg_catalog.xpath('/row/table_len/text()', x.doc))[1]::text::bigint)::bigint AS table_len,
           sum(greatest(0,
                 (pg_catalog.xpath('/row/approx_free_space/text()', x.doc))[1]::text::bigint
                 + (pg_catalog.xpath('/row/dead_tuple_len/text()', x.doc))[1]::text::bigint
                 -- A fresh copy keeps this much of each heap page free too: it is not waste.
                 - CASE WHEN m.is_heap
                        THEN (pg_catalog.xpath('/row/table_len/text()', x.doc))[1]::text::bigint
                             * (100 - m.fillfactor) / 100
                        ELSE 0 END))::bigint AS wasted_bytes
      FROM measurable AS m
     CROSS JOIN LATERAL pg_catalog.query_to_xml(
               pg_catalog.format(
                   'SELECT table_len, approx_free_space, dead_tuple_len '
                   'FROM %%I.pgstattuple_approx(%%s::pg_catalog.oid::pg_catalog.regclass)',
                   m.schema, m.relid),
               false, true, '') AS x(doc)
     GROUP BY m.table_oid
)
SELECT w.schema,
       w.name,
       (w.pages * w.block_size)::bigint AS size_bytes,
       w.has_stats,
       w.fillfactor,
       (w.wasted_pages * w.block_size)::bigint AS wasted_bytes,
       m.table_len AS exact_size_bytes,
       m.wasted_bytes AS exact_wasted_bytes,
       CASE WHEN m.table_oid IS NOT NULL THEN 'measured'
            WHEN c.table_oid IS NULL THEN 'not a candidate'
            WHEN NOT EXISTS (SELECT 1 FROM pgstattuple) THEN 'not installed'
            WHEN NOT (SELECT p.allowed FROM pgstattuple AS p) THEN 'not allowed'
            ELSE 'locked' END AS measure
  FROM wasted AS w
  LEFT JOIN candidates AS c ON c.table_oid = w.table_oid
  LEFT JOIN measured AS m ON m.table_oid = w.table_oid
 WHERE w.wasted_pages > 0 OR NOT w.has_stats
 ORDER BY coalesce(m.wasted_bytes, w.wasted_pages * w.block_size) DESC, w.schema, w.name
