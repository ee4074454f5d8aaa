-- Exact leaf density of one btree index (pgstattuple extension; reads the whole index).
SELECT avg_leaf_density::float8 AS avg_leaf_density
  FROM {schema}.pgstatindex(%(index_oid)s::bigint::pg_catalog.oid::pg_catalog.regclass)
