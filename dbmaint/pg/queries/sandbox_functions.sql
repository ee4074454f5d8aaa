-- The functions explain must judge before it executes a statement: those given by oid, and every
-- overload of the names given (unqualified names in the schemas of the search path, qualified ones in
-- their schema; an aggregate's support functions come along).
WITH named AS (
    SELECT p.oid
      FROM pg_catalog.pg_proc AS p
      JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
      JOIN ROWS FROM (pg_catalog.unnest(%(schemas)s::text[]), pg_catalog.unnest(%(names)s::text[])) AS wanted(schema_name, function_name)
        ON p.proname = wanted.function_name
       AND (n.nspname = wanted.schema_name
            OR (wanted.schema_name IS NULL AND n.nspname = ANY (pg_catalog.current_schemas(true))))
), direct AS (
    SELECT oid FROM named
    UNION
    SELECT o FROM pg_catalog.unnest(%(oids)s::bigint[]::pg_catalog.oid[]) AS o
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
       END AS definition
  FROM support AS s
  JOIN pg_catalog.pg_proc AS p ON p.oid = s.oid
  JOIN pg_catalog.pg_namespace AS n ON n.oid = p.pronamespace
  JOIN pg_catalog.pg_language AS l ON l.oid = p.prolang
