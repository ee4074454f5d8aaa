-- Exact page accounting of one btree index (pgstattuple extension; reads the whole index).
SELECT index_size::bigint AS index_size,
       internal_pages::bigint AS internal_pages,
       leaf_pages::bigint AS leaf_pages,
       avg_leaf_density::float8 AS avg_leaf_density
  FROM {schema}.pgstatindex(%(index_oid)s::bigint::pg_catalog.oid::pg_catalog.regclass)
