-- Tables a plan reads (named schema.table, or table when the plan did not say), with what a developer
-- wants beside the plan: size, row estimate, last analyze and rows changed since.
SELECT n.nspname || '.' || c.relname AS relation,
       c.oid::bigint AS table_oid,
       greatest(s.last_analyze, s.last_autoanalyze) AS last_analyze,
       coalesce(s.n_mod_since_analyze, 0) AS n_mod_since_analyze,
       greatest(c.reltuples, 0)::float8 AS reltuples,
       (c.relpages::bigint * pg_catalog.current_setting('block_size')::bigint) AS size_bytes
  FROM pg_catalog.pg_class AS c
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_stat_all_tables AS s ON s.relid = c.oid
 WHERE c.relkind IN ('r', 'p', 'm')
   AND (n.nspname || '.' || c.relname = ANY (%(names)s::text[])
        OR (c.relname = ANY (%(names)s::text[]) AND c.oid = pg_catalog.to_regclass(pg_catalog.quote_ident(c.relname))))
