"""Talking to PostgreSQL: connections with dbmaint's session settings, catalog readers, SQL files,
throwaway clusters."""
