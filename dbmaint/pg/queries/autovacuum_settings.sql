-- The server-wide autovacuum thresholds that a table's reloptions may override.
SELECT name, setting
  FROM pg_catalog.pg_settings
 WHERE name IN ('autovacuum_vacuum_threshold', 'autovacuum_vacuum_scale_factor',
                'autovacuum_analyze_threshold', 'autovacuum_analyze_scale_factor',
                'autovacuum_vacuum_insert_threshold', 'autovacuum_vacuum_insert_scale_factor',
                'autovacuum_freeze_max_age', 'autovacuum_multixact_freeze_max_age')
