"""Health samples: what maintenance watches (ages, dead rows, index bloat), per database over time.

Written out in full, not from the live metadata, so that this revision never changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dbmaint.store import schema

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dbmaint_health_samples",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("database", sa.String(length=128), nullable=False),
        sa.Column("sampled_at", schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("object", sa.Text(), nullable=False),
        sa.Column("xid_age", sa.BigInteger(), nullable=True),
        sa.Column("mxid_age", sa.BigInteger(), nullable=True),
        sa.Column("dead_tuples", sa.BigInteger(), nullable=True),
        sa.Column("live_tuples", sa.BigInteger(), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("bloat_bytes", sa.BigInteger(), nullable=True),
        sa.Column("bloat_ratio", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "dbmaint_health_samples_database_sampled",
        "dbmaint_health_samples",
        ["database", "sampled_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("dbmaint_health_samples_database_sampled", table_name="dbmaint_health_samples")
    op.drop_table("dbmaint_health_samples")
