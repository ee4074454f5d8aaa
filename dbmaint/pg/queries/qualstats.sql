-- Predicates pg_qualstats sampled in this database: per statement and column, a constant the application
-- really used (the most frequent), and how much of what they were evaluated on they kept.
SELECT q.queryid,
       n.nspname AS schema,
       c.relname AS table_name,
       a.attname AS column_name,
       o.oprname AS operator,
       (pg_catalog.array_agg(q.constvalue ORDER BY q.occurences DESC))[1] AS constant,
       sum(q.execution_count)::float8 AS evaluated,
       sum(q.nbfiltered)::float8 AS filtered
  FROM {schema}.pg_qualstats AS q
  JOIN pg_catalog.pg_class AS c ON c.oid = q.lrelid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_attribute AS a ON a.attrelid = q.lrelid AND a.attnum = q.lattnum
  JOIN pg_catalog.pg_operator AS o ON o.oid = q.opno
 WHERE q.dbid = (SELECT d.oid FROM pg_catalog.pg_database AS d WHERE d.datname = pg_catalog.current_database())
   AND q.rrelid IS NULL
 GROUP BY q.queryid, n.nspname, c.relname, a.attname, o.oprname
