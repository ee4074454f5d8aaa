"""How long the state store is waited for, and how much is kept while it is away: one place for the
store through SQLAlchemy (``base``) and the vacuum pass's direct writer (``direct``)."""

# SQLite waits this long for another writer's lock before a write fails: longer than any plausible
# writer (Python's default is 5 s, shorter than a `dbmaint history` export or a backup's lock).
SQLITE_BUSY_TIMEOUT_S = 60.0

# A failed write is tried again after these pauses (a PostgreSQL store restarting, a lock just missed).
WRITE_RETRY_DELAYS_S = (0.5, 2.0, 5.0)

# Records a service keeps in memory while its store answers reads but refuses writes (a read-only or full
# disk): months of nightly runs. Past it the service stops rather than drop one.
MAX_HELD_RECORDS = 100_000

# A pass over 500 tables with the store away logs the records it keeps once per this many, not 1,000 lines.
HELD_RECORDS_LOGGED_EVERY = 100
