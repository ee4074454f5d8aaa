"""Builders the unit tests share."""

from __future__ import annotations

import shutil
from pathlib import Path

from psycopg import sql

from dbmaint.model import Action, IndexRecommendation, QueryBenefit
from dbmaint.pg.facts import SchemaIndex, SchemaTable

ROOT = Path(__file__).resolve().parents[2]


def vacuum_action(name: str) -> Action:
    """A planned VACUUM of public.<name>, as the vacuum pass records it."""
    return Action(
        object=f"public.{name}",
        statement=sql.SQL("VACUUM {}").format(sql.Identifier("public", name)),
        reason="dead rows",
        kind="vacuum",
    )


COMPOSITE = IndexRecommendation(
    schema="public",
    table_name="Orders",
    columns=("customerId", "created_at"),
    include=("total",),
    directions=("", "DESC"),
    name="ix_Orders_customerId_created_at",
    definition=(
        'CREATE INDEX CONCURRENTLY "ix_Orders_customerId_created_at" ON public."Orders" ("customerId", created_at'
        " DESC) INCLUDE (total)"
    ),
    reason=(
        "2 statements filter Orders by customerId and read the newest first; the workload's planner cost falls"
        " from 18,400,000 to 95,000 (verified with hypothetical indexes)."
    ),
    queries=(
        QueryBenefit(
            query='SELECT id, total FROM "Orders"\n WHERE "customerId" = $1\n ORDER BY created_at DESC LIMIT $2',
            queryid=1,
            calls=120_000,
            cost_before=152.5,
            cost_after=0.75,
        ),
        QueryBenefit(
            query='SELECT sum(total) FROM "Orders" WHERE "customerId" = $1 AND created_at >= $2 AND created_at < $3'
            " -- monthly statement, a long query text cut in the docstring",
            queryid=2,
            calls=800,
            cost_before=180.0,
            cost_after=4.2,
        ),
    ),
    verified=True,
)


def migrations_dir(tmp_path: Path) -> Path:
    """A copy of this repository's Alembic environment with no revisions."""
    location = tmp_path / "migrations"
    (location / "versions").mkdir(parents=True)
    for name in ("env.py", "script.py.mako"):
        shutil.copy(ROOT / "migrations" / name, location / name)
    return location


def revision_of(path: Path) -> str:
    return path.name.split("_")[1]


# A table of the schema advisor's facts and its one index on (a), scanned 5 times: unit tests vary them with
# dataclasses.replace.
ORDERS_TABLE = SchemaTable(
    relid=100, schema="public", name="orders", is_partitioned=False, is_partition=False, partitions=0,
    reltuples=100_000, relpages=1024, size_bytes=1024 * 8192, n_tup_upd=0, n_tup_del=0, has_primary_key=True,
    partition_key=[], extension_member=False,
)  # fmt: skip
ORDERS_A_INDEX = SchemaIndex(
    index_oid=1000, table_oid=100, schema="public", name="orders_a", table_name="orders", method="btree",
    is_partitioned=False, is_partition=False, is_valid=True, is_ready=True, is_unique=False, nulls_not_distinct=False,
    key_attnums=[1], key_columns=["a"], opclasses=[1978], collations=[0], options=[0], include_columns=[],
    expressions=None, predicate=None, key_not_null=False, key_default_sorting=True, constraint_name=None,
    constraint_type=None, referenced_by_foreign_key=False, is_replica_identity=False, idx_scan=5,
    size_bytes=2 * 1024 * 1024, created_at=None, build_running=False, extension_member=False,
)  # fmt: skip
