-- The relations a statement names (by name, through the search path), what each is, and the SQL that
-- runs when it is read (a view's definition, row security policies) or, for the relations written, also
-- written (triggers, defaults and generated columns, CHECK constraints, rules, and the same for the
-- tables a foreign key's ON DELETE/UPDATE action writes in turn). Expressions come as the server prints
-- them: dependencies on built-in functions are not recorded in pg_depend.
WITH RECURSIVE named AS (
    SELECT pg_catalog.to_regclass(pg_catalog.quote_ident(w.schema_name) || '.' || pg_catalog.quote_ident(w.relation_name)) AS oid,
           w.written
      FROM ROWS FROM (pg_catalog.unnest(%(schemas)s::text[]), pg_catalog.unnest(%(names)s::text[]), pg_catalog.unnest(%(written)s::boolean[]))
           AS w(schema_name, relation_name, written)
     WHERE w.schema_name IS NOT NULL
    UNION ALL
    SELECT pg_catalog.to_regclass(pg_catalog.quote_ident(w.relation_name)), w.written
      FROM ROWS FROM (pg_catalog.unnest(%(schemas)s::text[]), pg_catalog.unnest(%(names)s::text[]), pg_catalog.unnest(%(written)s::boolean[]))
           AS w(schema_name, relation_name, written)
     WHERE w.schema_name IS NULL
), touched(oid, written) AS (
    SELECT oid, pg_catalog.bool_or(written) FROM named WHERE oid IS NOT NULL GROUP BY oid
    UNION
    SELECT c.conrelid, true
      FROM touched AS t
      JOIN pg_catalog.pg_constraint AS c
        ON c.confrelid = t.oid AND c.contype = 'f' AND (c.confdeltype NOT IN ('a', 'r') OR c.confupdtype NOT IN ('a', 'r'))
     WHERE t.written
)
SELECT c.oid::bigint AS oid,
       n.nspname AS schema,
       c.relname AS name,
       c.relkind::text AS kind,
       t.written,
       CASE WHEN c.relkind = 'v' THEN pg_catalog.pg_get_viewdef(c.oid) END AS view_definition,
       ARRAY(SELECT e FROM pg_catalog.pg_policy AS p,
                    LATERAL (VALUES (pg_catalog.pg_get_expr(p.polqual, p.polrelid)),
                                    (pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid))) AS x(e)
              WHERE p.polrelid = c.oid AND c.relrowsecurity AND e IS NOT NULL
             UNION ALL
             SELECT pg_catalog.pg_get_expr(a.adbin, a.adrelid) FROM pg_catalog.pg_attrdef AS a
              WHERE t.written AND a.adrelid = c.oid
             UNION ALL
             SELECT pg_catalog.pg_get_expr(k.conbin, k.conrelid) FROM pg_catalog.pg_constraint AS k
              WHERE t.written AND k.conrelid = c.oid AND k.contype = 'c') AS expressions,
       ARRAY(SELECT g.tgfoid::bigint FROM pg_catalog.pg_trigger AS g
              WHERE t.written AND g.tgrelid = c.oid AND NOT g.tgisinternal AND g.tgenabled <> 'D') AS trigger_functions,
       EXISTS (SELECT FROM pg_catalog.pg_rewrite AS r
                WHERE t.written AND r.ev_class = c.oid AND r.ev_type <> '1') AS has_write_rules
  FROM (SELECT oid, pg_catalog.bool_or(written) AS written FROM touched GROUP BY oid) AS t
  JOIN pg_catalog.pg_class AS c ON c.oid = t.oid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
