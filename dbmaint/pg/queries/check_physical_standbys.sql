-- Physical standbys streaming from this server right now (cascaded ones stream from a standby and are not
-- seen here): their queries use this database's indexes but count their scans on the standby only.
-- A walsender of physical replication is connected to no database (a logical one is).
SELECT count(*)::int AS streaming
  FROM pg_catalog.pg_stat_activity AS a
 WHERE a.backend_type = 'walsender'
   AND a.datname IS NULL
