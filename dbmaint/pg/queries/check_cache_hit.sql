-- How often this database's tables and indexes found their blocks in shared_buffers, as pghero computes it:
-- blocks hit against blocks hit or read (a read may still come from the OS page cache), summed over the user
-- tables (pg_statio_user_tables) and over their indexes (pg_statio_user_indexes), since the statistics reset.
-- Counters only: nothing here reads a table or waits for a lock.
SELECT coalesce((SELECT sum(s.heap_blks_hit) FROM pg_catalog.pg_statio_user_tables AS s), 0)::bigint AS heap_hit,
       coalesce((SELECT sum(s.heap_blks_read) FROM pg_catalog.pg_statio_user_tables AS s), 0)::bigint AS heap_read,
       coalesce((SELECT sum(s.idx_blks_hit) FROM pg_catalog.pg_statio_user_indexes AS s), 0)::bigint AS index_hit,
       coalesce((SELECT sum(s.idx_blks_read) FROM pg_catalog.pg_statio_user_indexes AS s), 0)::bigint AS index_read,
       pg_catalog.current_setting('block_size')::int AS block_size,
       pg_catalog.current_setting('shared_buffers') AS shared_buffers,
       (SELECT d.stats_reset FROM pg_catalog.pg_stat_database AS d
         WHERE d.datname = pg_catalog.current_database()) AS stats_reset
