-- Every relation a statement might name, with its columns (in order, with types) and, for views, the
-- definition to parse in turn. pg_catalog's relations are listed too, so that an unqualified pg_class
-- resolves to the catalog (and is skipped) rather than to a missing table. With %(names)s, only the relations
-- of those names (in any schema): the statements' own, for a handful of statements given by hand.
SELECT n.nspname AS schema,
       c.relname AS name,
       c.relkind::text AS kind,
       coalesce((SELECT pg_catalog.json_object_agg(a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod)
                                                    ORDER BY a.attnum)
                   FROM pg_catalog.pg_attribute AS a
                  WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '{}'::json) AS columns,
       CASE WHEN c.relkind = 'v' THEN pg_catalog.pg_get_viewdef(c.oid) END AS view_definition
  FROM pg_catalog.pg_class AS c
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND n.nspname <> 'information_schema'
   AND n.nspname NOT LIKE 'pg\_toast%%'
   AND n.nspname NOT LIKE 'pg\_temp\_%%'
   AND (%(names)s::text[] IS NULL OR c.relname = ANY(%(names)s::text[]))
