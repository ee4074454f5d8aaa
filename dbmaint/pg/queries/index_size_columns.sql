-- What the btree size model needs of some columns of one table: the type's storage and alignment,
-- whether its default btree operator class compares by image (so a build may deduplicate; varchar
-- compares as text; bpchar never does), the collation's determinism, and pg_stats; with the table's row count.
SELECT a.attname AS name,
       t.typlen::int AS typlen,
       t.typalign::text AS typalign,
       coalesce(s.avg_width, CASE WHEN t.typlen > 0 THEN t.typlen ELSE 32 END)::float8 AS avg_width,
       coalesce(s.null_frac, 0)::float8 AS null_frac,
       coalesce(s.n_distinct, 0)::float8 AS n_distinct,
       coalesce(s.most_common_freqs, '{}')::float8[] AS common_freqs,
       coalesce(co.collisdeterministic, true)
       -- bpchar never deduplicates (its index's allequalimage is false) though its family lists
       -- btvarstrequalimage: measured on PG15, a char(10) key of 7 values takes its full width per row.
       AND (CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END) <> 'pg_catalog.bpchar'::pg_catalog.regtype
       AND EXISTS (SELECT FROM pg_catalog.pg_opclass AS oc
                     JOIN pg_catalog.pg_am AS am ON am.oid = oc.opcmethod AND am.amname = 'btree'
                     JOIN pg_catalog.pg_amproc AS p ON p.amprocfamily = oc.opcfamily AND p.amprocnum = 4
                    WHERE oc.opcdefault
                      AND oc.opcintype = CASE WHEN t.typname = 'varchar' THEN 'pg_catalog.text'::pg_catalog.regtype
                                              WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END) AS equal_image,
       greatest(c.reltuples, 0)::float8 AS reltuples
  FROM pg_catalog.pg_class AS c
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
  LEFT JOIN pg_catalog.pg_collation AS co ON co.oid = a.attcollation
  LEFT JOIN pg_catalog.pg_stats AS s
    ON s.schemaname = n.nspname AND s.tablename = c.relname AND s.attname = a.attname AND NOT s.inherited
 WHERE n.nspname = %(schema)s AND c.relname = %(table)s AND a.attname = ANY (%(columns)s::text[])
