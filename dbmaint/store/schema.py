"""The state store's tables (SQLAlchemy Core), SQLite or PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from dbmaint.store.records import _aware


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware datetimes stored as UTC: SQLite keeps no offset, so a time in another zone (APScheduler hands
    back times in the configured zone) would otherwise be read back hours off."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("dbmaint stores aware datetimes only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return _aware(value)


metadata = sa.MetaData()


runs = sa.Table(
    "dbmaint_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job", sa.String(32), nullable=False),
    sa.Column("database", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime()),
    sa.Column("host", sa.String(255)),
    sa.Column("warnings", sa.Text),
    # The scheduled time a service run answers (NULL for runs by hand): a restart must never run it twice.
    sa.Column("scheduled_for", UTCDateTime()),
    # The process that ran it: a run left running by a process that is gone is closed as interrupted.
    sa.Column("pid", sa.Integer),
    # The PostgreSQL server it ran on (pg_control_system()'s system_identifier): two clusters with a
    # database of the same name never share a history (nor reindex's min_interval).
    sa.Column("server", sa.String(32)),
    sa.Index("dbmaint_runs_job_database_started", "job", "database", "started_at"),
)


# The service's schedule, per host: each job's next due time survives a restart, so a run the host was
# down for is still run (within the misfire grace) or recorded as missed, and never run twice.
schedules = sa.Table(
    "dbmaint_schedules",
    metadata,
    sa.Column("host", sa.String(255), primary_key=True),
    sa.Column("job", sa.String(32), primary_key=True),
    sa.Column("database", sa.String(128), primary_key=True),
    sa.Column("schedule", sa.String(128), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("next_run_at", UTCDateTime()),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)


# One row per host running the service: `dbmaint status` tells a live service from a stopped one.
services = sa.Table(
    "dbmaint_services",
    metadata,
    sa.Column("host", sa.String(255), primary_key=True),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
    sa.Column("stopped_at", UTCDateTime()),
)


actions = sa.Table(
    "dbmaint_actions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("dbmaint_runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("object", sa.Text, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("statement", sa.Text, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("duration_s", sa.Float),
    sa.Column("detail", sa.Text),
    sa.Column("size_before", sa.BigInteger),
    sa.Column("size_after", sa.BigInteger),
    sa.Index("dbmaint_actions_run", "run_id"),
    sa.Index("dbmaint_actions_object", "object", "kind"),
)


# Slow-query capture: the statements, their counters per pass, and their plans over time.
statements = sa.Table(
    "dbmaint_statements",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("database", sa.String(128), nullable=False),
    sa.Column("queryid", sa.BigInteger, nullable=False),
    sa.Column("fingerprint", sa.String(64)),
    sa.Column("query", sa.Text, nullable=False),
    sa.Column("first_seen", UTCDateTime(), nullable=False),
    sa.Column("last_seen", UTCDateTime(), nullable=False),
    # pg_stat_statements' cumulative counters at the last pass: the next pass's deltas start here.
    sa.Column("last_calls", sa.BigInteger, nullable=False, default=0),
    sa.Column("last_total_ms", sa.Float, nullable=False, default=0.0),
    sa.UniqueConstraint("database", "queryid", name="dbmaint_statements_database_queryid"),
)


samples = sa.Table(
    "dbmaint_statement_samples",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("dbmaint_runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("database", sa.String(128), nullable=False),
    sa.Column("queryid", sa.BigInteger, nullable=False),
    sa.Column("captured_at", UTCDateTime(), nullable=False),
    sa.Column("calls", sa.BigInteger, nullable=False),  # since the previous pass
    sa.Column("total_ms", sa.Float, nullable=False),
    sa.Column("mean_ms", sa.Float, nullable=False),
    sa.Column("cumulative_mean_ms", sa.Float, nullable=False),
    sa.Index("dbmaint_samples_statement", "database", "queryid", "captured_at"),
)


plans = sa.Table(
    "dbmaint_plans",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("dbmaint_runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("database", sa.String(128), nullable=False),
    sa.Column("queryid", sa.BigInteger, nullable=False),
    sa.Column("captured_at", UTCDateTime(), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),  # generic, analyze, auto_explain
    sa.Column("signature", sa.String(64), nullable=False),
    sa.Column("total_cost", sa.Float, nullable=False),
    sa.Column("execution_ms", sa.Float),
    sa.Column("plan", sa.Text, nullable=False),  # PostgreSQL's JSON
    sa.Column("problems", sa.Text, nullable=False),  # JSON list
    sa.Column("regression", sa.Text),  # why this plan is a regression, if it is
    sa.Index("dbmaint_plans_statement", "database", "queryid", "captured_at"),
)


# What maintenance watches, per database over time (``dbmaint report`` charts it): the service writes one
# sample an hour per database: the database's own ages, and the worst few tables and indexes of the moment.
# ``kind`` says which row is which; a figure a kind does not have is NULL.
health_samples = sa.Table(
    "dbmaint_health_samples",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("database", sa.String(128), nullable=False),
    sa.Column("sampled_at", UTCDateTime(), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # database, table or index
    sa.Column("object", sa.Text, nullable=False),  # schema.name; the database's own name for its row
    sa.Column("xid_age", sa.BigInteger),
    sa.Column("mxid_age", sa.BigInteger),
    sa.Column("dead_tuples", sa.BigInteger),
    sa.Column("live_tuples", sa.BigInteger),
    sa.Column("size_bytes", sa.BigInteger),
    sa.Column("bloat_bytes", sa.BigInteger),  # indexes: estimated reclaimable bytes
    sa.Column("bloat_ratio", sa.Float),
    sa.Index("dbmaint_health_samples_database_sampled", "database", "sampled_at"),
)
