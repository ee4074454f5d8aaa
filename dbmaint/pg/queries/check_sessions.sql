-- Every session of the cluster but this one, for the items idle_in_transaction, long_running and
-- blocking_locks: what it runs and since when, what it holds (relation locks, the xmin horizon) and, when it
-- waits for a lock, who blocks it. Sessions of every database, because a session here may be blocked by one
-- elsewhere (on a shared catalog) and the items mention the others; the items judge only this database's.
WITH locks AS (
    -- One pass over the lock table for every session. Unlike pg_stat_activity, pg_locks shows every role's
    -- locks to any role: lock waits are seen even without pg_monitor.
    SELECT l.pid,
           (count(*) FILTER (WHERE l.granted AND l.locktype = 'relation'))::int AS relation_locks,
           bool_or(NOT l.granted) AS waiting,
           -- NULL for a very short while after the wait began; the session's state_change stands in then.
           min(l.waitstart) FILTER (WHERE NOT l.granted) AS wait_start
      FROM pg_catalog.pg_locks AS l
     WHERE l.pid IS NOT NULL  -- a prepared transaction's locks belong to no session
     GROUP BY l.pid
)
SELECT a.pid,
       a.datname::text AS database,
       a.datname IS NOT DISTINCT FROM pg_catalog.current_database() AS in_database,
       a.usename::text AS user_name,
       a.application_name,
       -- A Unix-socket client has no address (client_port -1); a background process has neither.
       coalesce(pg_catalog.host(a.client_addr), CASE WHEN a.client_port = -1 THEN 'local' END) AS client,
       -- Without pg_monitor (pg_read_all_stats), another role's session shows its pid, database, user and
       -- application only: backend_type, state and times are NULL, query reads '<insufficient privilege>'.
       a.backend_type,
       a.state,
       a.query,
       extract(epoch FROM pg_catalog.now() - a.state_change)::float8 AS state_s,
       extract(epoch FROM pg_catalog.now() - a.xact_start)::float8 AS xact_s,
       extract(epoch FROM pg_catalog.now() - a.query_start)::float8 AS query_s,
       -- An assigned transaction ID or a snapshot's xmin holds back what vacuum may remove.
       greatest(pg_catalog.age(a.backend_xid), pg_catalog.age(a.backend_xmin)) AS xmin_age,
       coalesce(l.relation_locks, 0) AS relation_locks,
       coalesce(l.waiting, false) AS waiting,
       CASE WHEN l.waiting
            THEN extract(epoch FROM pg_catalog.now() - coalesce(l.wait_start, a.state_change))::float8
       END AS wait_s,
       -- pg_blocking_pids() needs the lock manager's shared state to itself for a moment: it is asked only of
       -- the sessions that wait.
       -- 0 stands for a prepared transaction; a parallel query's leader may be listed more than once.
       CASE WHEN l.waiting THEN pg_catalog.pg_blocking_pids(a.pid) ELSE '{}'::int[] END AS blocked_by
  FROM pg_catalog.pg_stat_activity AS a
  LEFT JOIN locks AS l ON l.pid = a.pid
 WHERE a.pid <> pg_catalog.pg_backend_pid()
 ORDER BY a.pid
