-- Where each tablespace lives on disk; the default ones are under the data directory.
SELECT t.oid::bigint AS tablespace_oid,
       CASE WHEN t.spcname IN ('pg_default', 'pg_global')
            THEN pg_catalog.current_setting('data_directory')
            ELSE pg_catalog.pg_tablespace_location(t.oid) END AS path
  FROM pg_catalog.pg_tablespace AS t
