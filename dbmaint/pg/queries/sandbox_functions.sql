-- The functions explain must judge before it executes a statement: those given by oid, every overload of
-- the names given (unqualified names in the schemas of the search path, qualified ones in their schema),
-- the functions behind every operator of the operator names given and behind the casts to the types given
-- (in one query with the rest: a round trip and a plan fewer); an aggregate's support functions come along.
-- reached_by names the operator ("schema.name" or "name", as written) or the type ("type:...") that led to a
-- function, when one did.
WITH named AS (
    SELECT p.oid
      FROM pg_catalog.pg_proc AS p
      JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
      JOIN ROWS FROM (pg_catalog.unnest(%(schemas)s::text[]), pg_catalog.unnest(%(names)s::text[])) AS wanted(schema_name, function_name)
        ON p.proname = wanted.function_name
       AND (n.nspname = wanted.schema_name
            OR (wanted.schema_name IS NULL AND n.nspname = ANY (pg_catalog.current_schemas(true))))
), behind_operators AS (
    SELECT o.oprcode AS oid, coalesce(w.schema_name || '.', '') || w.operator_name AS reached_by
      FROM pg_catalog.pg_operator AS o
      JOIN pg_catalog.pg_namespace AS n ON n.oid = o.oprnamespace
      JOIN ROWS FROM (pg_catalog.unnest(%(operator_schemas)s::text[]), pg_catalog.unnest(%(operator_names)s::text[]))
           AS w(schema_name, operator_name)
        ON o.oprname = w.operator_name
       AND (n.nspname = w.schema_name OR (w.schema_name IS NULL AND n.nspname = ANY (pg_catalog.current_schemas(true))))
     WHERE o.oprcode <> 0
    UNION
    SELECT c.castfunc, 'type:' || coalesce(w.schema_name || '.', '') || w.type_name
      FROM pg_catalog.pg_cast AS c
      JOIN pg_catalog.pg_type AS t ON t.oid = c.casttarget
      JOIN pg_catalog.pg_namespace AS n ON n.oid = t.typnamespace
      JOIN ROWS FROM (pg_catalog.unnest(%(type_schemas)s::text[]), pg_catalog.unnest(%(type_names)s::text[]))
           AS w(schema_name, type_name)
        ON t.typname = w.type_name
       AND (n.nspname = w.schema_name OR (w.schema_name IS NULL AND n.nspname = ANY (pg_catalog.current_schemas(true))))
     WHERE c.castfunc <> 0 AND n.nspname <> 'pg_catalog'
), direct AS (
    SELECT oid FROM named
    UNION
    SELECT o FROM pg_catalog.unnest(%(oids)s::bigint[]::pg_catalog.oid[]) AS o
    UNION
    SELECT oid FROM behind_operators
), support AS (
    SELECT d.oid FROM direct AS d
    UNION
    SELECT s.support
      FROM pg_catalog.pg_aggregate AS a
      JOIN direct AS d ON d.oid = a.aggfnoid
      CROSS JOIN LATERAL (VALUES (a.aggtransfn), (a.aggfinalfn), (a.aggcombinefn), (a.aggserialfn),
                                 (a.aggdeserialfn), (a.aggmtransfn), (a.aggminvtransfn), (a.aggmfinalfn))
                         AS s(support)
     WHERE s.support <> 0
)
SELECT p.oid::bigint AS oid,
       n.nspname AS schema,
       p.proname AS name,
       p.provolatile::text AS volatility,
       p.prosecdef AS security_definer,
       l.lanname AS language,
       p.prokind::text AS kind,
       p.prosqlbody IS NOT NULL AS has_sql_body,
       CASE WHEN l.lanname = 'sql' THEN p.prosrc ELSE '' END AS source,
       CASE WHEN l.lanname = 'plpgsql' OR p.prosqlbody IS NOT NULL THEN pg_catalog.pg_get_functiondef(p.oid) ELSE ''
       END AS definition,
       (SELECT b.reached_by FROM behind_operators AS b WHERE b.oid = p.oid LIMIT 1) AS reached_by
  FROM support AS s
  JOIN pg_catalog.pg_proc AS p ON p.oid = s.oid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
  JOIN pg_catalog.pg_language AS l ON l.oid = p.prolang
