"""The baseline: the state store's tables as they were when its schema became versioned.

A store older than that (made by create_all, with columns added by hand) is brought to this point in
place by ``dbmaint.store.versioning`` and stamped; from here on every change is a revision of its own.
Written out in full, not from the live metadata, so that this revision never changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dbmaint.store import schema

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dbmaint_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job", sa.String(length=32), nullable=False),
        sa.Column("database", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("started_at", schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("warnings", sa.Text(), nullable=True),
        sa.Column("scheduled_for", schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("server", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "dbmaint_runs_job_database_started", "dbmaint_runs", ["job", "database", "started_at"], unique=False
    )
    op.create_table(
        "dbmaint_schedules",
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("job", sa.String(length=32), nullable=False),
        sa.Column("database", sa.String(length=128), nullable=False),
        sa.Column("schedule", sa.String(length=128), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("next_run_at", schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", schema.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("host", "job", "database"),
    )
    op.create_table(
        "dbmaint_services",
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("started_at", schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", schema.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("host"),
    )
    op.create_table(
        "dbmaint_statements",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("database", sa.String(length=128), nullable=False),
        sa.Column("queryid", sa.BigInteger(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("first_seen", schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen", schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_calls", sa.BigInteger(), nullable=False),
        sa.Column("last_total_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("database", "queryid", name="dbmaint_statements_database_queryid"),
    )
    op.create_table(
        "dbmaint_actions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("object", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("size_before", sa.BigInteger(), nullable=True),
        sa.Column("size_after", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["dbmaint_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("dbmaint_actions_object", "dbmaint_actions", ["object", "kind"], unique=False)
    op.create_index("dbmaint_actions_run", "dbmaint_actions", ["run_id"], unique=False)
    op.create_table(
        "dbmaint_plans",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("database", sa.String(length=128), nullable=False),
        sa.Column("queryid", sa.BigInteger(), nullable=False),
        sa.Column("captured_at", schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("signature", sa.String(length=64), nullable=False),
        sa.Column("total_cost", sa.Float(), nullable=False),
        sa.Column("execution_ms", sa.Float(), nullable=True),
        sa.Column("plan", sa.Text(), nullable=False),
        sa.Column("problems", sa.Text(), nullable=False),
        sa.Column("regression", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["dbmaint_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("dbmaint_plans_statement", "dbmaint_plans", ["database", "queryid", "captured_at"], unique=False)
    op.create_table(
        "dbmaint_statement_samples",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("database", sa.String(length=128), nullable=False),
        sa.Column("queryid", sa.BigInteger(), nullable=False),
        sa.Column("captured_at", schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("total_ms", sa.Float(), nullable=False),
        sa.Column("mean_ms", sa.Float(), nullable=False),
        sa.Column("cumulative_mean_ms", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["dbmaint_runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "dbmaint_samples_statement", "dbmaint_statement_samples", ["database", "queryid", "captured_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("dbmaint_samples_statement", table_name="dbmaint_statement_samples")
    op.drop_table("dbmaint_statement_samples")
    op.drop_index("dbmaint_plans_statement", table_name="dbmaint_plans")
    op.drop_table("dbmaint_plans")
    op.drop_index("dbmaint_actions_run", table_name="dbmaint_actions")
    op.drop_index("dbmaint_actions_object", table_name="dbmaint_actions")
    op.drop_table("dbmaint_actions")
    op.drop_table("dbmaint_statements")
    op.drop_table("dbmaint_services")
    op.drop_table("dbmaint_schedules")
    op.drop_index("dbmaint_runs_job_database_started", table_name="dbmaint_runs")
    op.drop_table("dbmaint_runs")
