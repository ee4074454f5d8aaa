-- The functions behind every operator of the names given (unqualified names: the search path's schemas),
-- and behind the casts to the types given by name.
SELECT o.oprcode::pg_catalog.oid::bigint AS function_oid
  FROM pg_catalog.pg_operator AS o
  JOIN pg_catalog.pg_namespace AS n ON n.oid = o.oprnamespace
  JOIN ROWS FROM (pg_catalog.unnest(%(schemas)s::text[]), pg_catalog.unnest(%(names)s::text[])) AS w(schema_name, operator_name)
    ON o.oprname = w.operator_name
   AND (n.nspname = w.schema_name OR (w.schema_name IS NULL AND n.nspname = ANY (pg_catalog.current_schemas(true))))
 WHERE o.oprcode <> 0
UNION
SELECT c.castfunc::bigint
  FROM pg_catalog.pg_cast AS c
  JOIN pg_catalog.pg_type AS t ON t.oid = c.casttarget
  JOIN pg_catalog.pg_namespace AS n ON n.oid = t.typnamespace
  JOIN ROWS FROM (pg_catalog.unnest(%(type_schemas)s::text[]), pg_catalog.unnest(%(type_names)s::text[])) AS w(schema_name, type_name)
    ON t.typname = w.type_name
   AND (n.nspname = w.schema_name OR (w.schema_name IS NULL AND n.nspname = ANY (pg_catalog.current_schemas(true))))
 WHERE c.castfunc <> 0 AND n.nspname <> 'pg_catalog'
