"""Slow-query capture: statements over the threshold from pg_stat_statements, with their plans."""
