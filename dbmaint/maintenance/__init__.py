"""VACUUM ANALYZE and REINDEX CONCURRENTLY: which tables and indexes need it, and doing it safely."""
