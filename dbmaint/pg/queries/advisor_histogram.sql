-- A column's histogram bounds, most common value (and how common) and least common listed value, for
-- planning $n with representative values.
SELECT s.histogram_bounds::text::text[] AS histogram,
       (s.most_common_vals::text::text[])[1] AS most_common,
       coalesce(s.most_common_freqs[1], 0)::float8 AS most_common_freq,
       (s.most_common_vals::text::text[])[pg_catalog.array_length(s.most_common_freqs, 1)] AS least_common
  FROM pg_catalog.pg_stats AS s
 WHERE s.schemaname = %(schema)s AND s.tablename = %(table)s AND s.attname = %(column)s AND NOT s.inherited
