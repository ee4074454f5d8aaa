-- How busy the server is: client sessions doing something, and the worst replica replay lag.
SELECT (SELECT count(*)
          FROM pg_catalog.pg_stat_activity
         WHERE backend_type = 'client backend'
           AND state IS DISTINCT FROM 'idle'
           AND pid <> pg_catalog.pg_backend_pid())::int AS active_connections,
       (SELECT extract(epoch FROM max(replay_lag))::float8
          FROM pg_catalog.pg_stat_replication) AS replication_lag_s
