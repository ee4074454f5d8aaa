"""`dbmaint demo`: a throwaway PostgreSQL with a sample shop, made dirty on purpose, and each job once."""
