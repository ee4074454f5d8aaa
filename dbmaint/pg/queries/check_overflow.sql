-- Every sequence, with each column it feeds: what the integer_overflow item needs to tell how much of the
-- range is used (pghero's "columns near overflow", plus sequences that feed no column).
-- One row per sequence and fed column; a sequence that feeds none has one row with the column NULL.
WITH links AS (
    -- The column a sequence belongs to: 'a' for serial (and OWNED BY), 'i' for an identity column.
    -- Indexes depend on columns with 'a' too: the join to pg_sequences below keeps only sequences.
    SELECT d.objid AS seqid, d.refobjid AS relid, d.refobjsubid AS attnum
      FROM pg_catalog.pg_depend AS d
     WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
       AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
       AND d.refobjsubid > 0
       AND d.deptype IN ('a', 'i')
    UNION
    -- Any column whose DEFAULT calls nextval() on it, owned or not (a sequence shared by several tables,
    -- one created apart): the default depends on the sequence ('n'). UNION: a serial column has both links.
    SELECT d.refobjid, ad.adrelid, ad.adnum
      FROM pg_catalog.pg_depend AS d
      JOIN pg_catalog.pg_attrdef AS ad ON ad.oid = d.objid
     WHERE d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass
       AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
       AND d.deptype = 'n'
),
fed AS (
    -- Partitions and inheritance children copy their parent's column and its default: the parent's column
    -- (attinhcount = 0), of the same type, stands for them all.
    SELECT l.seqid, a.attrelid, a.attname, a.atttypid, a.atttypmod, a.attidentity
      FROM links AS l
      JOIN pg_catalog.pg_attribute AS a ON a.attrelid = l.relid AND a.attnum = l.attnum
     WHERE NOT a.attisdropped
       AND a.attinhcount = 0
)
SELECT ps.schemaname::text AS sequence_schema,
       ps.sequencename::text AS sequence_name,
       ps.data_type::text AS sequence_type,
       ps.increment_by AS increment,
       ps.min_value,
       ps.max_value,
       ps.cycle,
       -- NULL both when the sequence was never called and when this role may not read it (a pg_monitor
       -- role has no privilege on sequences): "readable" tells the two apart, with the view's own test.
       ps.last_value,
       pg_catalog.has_sequence_privilege(s.oid, 'SELECT,USAGE') AS readable,
       tn.nspname::text AS table_schema,
       t.relname::text AS table_name,
       f.attname::text AS column_name,
       pg_catalog.format_type(f.atttypid, f.atttypmod) AS column_type,
       -- A domain over integer overflows where integer does (one level of domain: nesting them is rare).
       pg_catalog.format_type(coalesce(nullif(ty.typbasetype, 0), f.atttypid), NULL) AS column_base_type,
       f.attidentity <> '' AS identity
  -- pg_sequences leaves out other sessions' temporary sequences, which cannot be read.
  FROM pg_catalog.pg_sequences AS ps
  JOIN pg_catalog.pg_namespace AS sn ON sn.nspname = ps.schemaname
  JOIN pg_catalog.pg_class AS s ON s.relnamespace = sn.oid AND s.relname = ps.sequencename
  LEFT JOIN fed AS f ON f.seqid = s.oid
  LEFT JOIN pg_catalog.pg_class AS t ON t.oid = f.attrelid
  LEFT JOIN pg_catalog.pg_namespace AS tn ON tn.oid = t.relnamespace
  LEFT JOIN pg_catalog.pg_type AS ty ON ty.oid = f.atttypid
 ORDER BY ps.schemaname, ps.sequencename, tn.nspname, t.relname, f.attname
