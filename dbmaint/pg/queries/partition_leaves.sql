-- The leaf partitions of a partitioned table (through every level), that can hold an index: foreign-table
-- partitions cannot. Nothing for a table that is not partitioned.
SELECT ln.nspname AS schema,
       l.relname AS name
  FROM pg_catalog.pg_class AS c
  JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace
 CROSS JOIN LATERAL pg_catalog.pg_partition_tree(c.oid) AS tree
  JOIN pg_catalog.pg_class AS l ON l.oid = tree.relid
  JOIN pg_catalog.pg_namespace AS ln ON ln.oid = l.relnamespace
 WHERE n.nspname = %(schema)s AND c.relname = %(table)s AND c.relkind = 'p'
   AND tree.isleaf AND l.relkind = 'r'
 ORDER BY ln.nspname, l.relname
