-- Connection slots in use, by database, user and state (check item active_connections). Client backends take
-- the max_connections slots (walsenders and background workers have slots of their own), of which
-- superuser_reserved_connections are kept for superusers: the rest is what applications can have.
SELECT a.datname::text AS database,
       a.usename::text AS user_name,
       a.state,
       -- Another role's session without pg_monitor: its kind and state are hidden. One with a database and a
       -- user is a client (or a background worker that has both, such as a parallel worker): it is counted.
       a.backend_type IS NULL AS hidden,
       a.pid = pg_catalog.pg_backend_pid() AS own,
       count(*)::int AS connections,
       s.max_connections,
       s.reserved
  FROM pg_catalog.pg_stat_activity AS a
 CROSS JOIN (SELECT pg_catalog.current_setting('max_connections')::int AS max_connections,
                    pg_catalog.current_setting('superuser_reserved_connections')::int AS reserved) AS s
 WHERE a.backend_type = 'client backend'
    OR (a.backend_type IS NULL AND a.datname IS NOT NULL AND a.usename IS NOT NULL)
 GROUP BY a.datname, a.usename, a.state, a.backend_type IS NULL, a.pid = pg_catalog.pg_backend_pid(),
          s.max_connections, s.reserved
 ORDER BY connections DESC
