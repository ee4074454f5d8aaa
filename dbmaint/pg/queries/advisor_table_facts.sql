-- For the tables a workload touches: size, the key columns of their valid non-partial btree indexes,
-- per-column statistics (distinct values, most common values with their frequencies), and how much of
-- their traffic is writes (every index is paid for on each write).
SELECT n.nspname AS schema,
       c.relname AS name,
       greatest(c.reltuples, 0)::float8 AS reltuples,
       coalesce((SELECT pg_catalog.json_agg(cols)
                   FROM (SELECT (SELECT pg_catalog.json_agg(a.attname ORDER BY k.ord)
                                   FROM pg_catalog.unnest(i.indkey[0:i.indnkeyatts - 1]) WITH ORDINALITY AS k(attnum, ord)
                                   JOIN pg_catalog.pg_attribute AS a
                                     ON a.attrelid = i.indrelid AND a.attnum = k.attnum) AS cols
                           FROM pg_catalog.pg_index AS i
                           JOIN pg_catalog.pg_class AS ic ON ic.oid = i.indexrelid
                           JOIN pg_catalog.pg_am AS am ON am.oid = ic.relam
                          WHERE i.indrelid = c.oid AND i.indisvalid AND i.indpred IS NULL
                            AND am.amname = 'btree' AND NOT (0 = ANY (i.indkey::int2[]))) AS indexes
                  WHERE cols IS NOT NULL), '[]'::json) AS existing,
       coalesce((SELECT pg_catalog.json_object_agg(s.attname, s.n_distinct)
                   FROM pg_catalog.pg_stats AS s
                  WHERE s.schemaname = n.nspname AND s.tablename = c.relname AND NOT s.inherited), '{}'::json)
           AS n_distinct,
       coalesce((SELECT pg_catalog.json_object_agg(s.attname, pg_catalog.json_build_object(
                            'values', s.most_common_vals::text::text[], 'freqs', s.most_common_freqs))
                   FROM pg_catalog.pg_stats AS s
                  WHERE s.schemaname = n.nspname AND s.tablename = c.relname AND NOT s.inherited
                    AND s.most_common_vals IS NOT NULL), '{}'::json) AS common_values,
       coalesce((t.n_tup_ins + t.n_tup_upd + t.n_tup_del)::float8
                / nullif(t.n_tup_ins + t.n_tup_upd + t.n_tup_del + t.seq_tup_read
                         + coalesce(t.idx_tup_fetch, 0), 0), 0)::float8 AS write_share
  FROM pg_catalog.pg_class AS c
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
  LEFT JOIN pg_catalog.pg_stat_all_tables AS t ON t.relid = c.oid
 -- Multi-argument unnest is FROM-clause syntax and cannot be schema-qualified.
 WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest(%(schemas)s::text[], %(names)s::text[]))
