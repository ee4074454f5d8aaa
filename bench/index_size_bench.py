"""The btree size model against real builds: for a matrix of indexes (unique, high and low cardinality,
composite, INCLUDE, partial, nullable, text, uuid, timestamp, numeric, bigint), the size after CREATE
INDEX, dbmaint's estimate, and hypopg's, with each estimate's ratio to the built size.

The matrix is shared with tests/db/test_index_size.py, which holds every estimate to within 25%.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from bench import common
from dbmaint.advisor.sizing import Sizer

NAME = "index_size"
SETTINGS = {"autovacuum": "off", "maintenance_work_mem": "'256MB'"}


def setup(rows: int) -> list[str | sql.Composed]:
    """A table of ``rows`` rows with columns of every kind the matrix needs (run without parameters: a
    % here is the modulo operator)."""
    return [
        "CREATE EXTENSION IF NOT EXISTS hypopg",
        "DROP TABLE IF EXISTS sized",
        """CREATE TABLE sized (id bigint, user_id int, status text, code text, created timestamptz, u uuid,
                               amount numeric, maybe int, cat int, note text, mode char(10))""",
        sql.SQL(
            """INSERT INTO sized
            SELECT g, (g::bigint * 7919) % 20000, (ARRAY['new', 'paid', 'shipped', 'done'])[1 + g % 4],
                   'code-' || (g % 50000), now() - g * interval '1 second', md5(g::text)::uuid,
                   (g % 1000)::numeric / 7, CASE WHEN g % 3 = 0 THEN NULL ELSE g % 100 END, g % 10,
                   repeat('n', 10 + g % 30),
                   (ARRAY['AIR', 'MAIL', 'SHIP', 'TRUCK', 'RAIL', 'FOB', 'REG AIR'])[1 + g % 7]
              FROM generate_series(1, {}) AS g"""
        ).format(sql.Literal(rows)),
        "ANALYZE sized",
    ]


@dataclass(frozen=True)
class Case:
    label: str
    columns: tuple[str, ...]
    include: tuple[str, ...] = ()
    where: str | None = None
    unique: bool = False

    def statement(self, name: str) -> sql.Composed:
        parts: list[sql.Composable] = [
            sql.SQL("CREATE UNIQUE INDEX " if self.unique else "CREATE INDEX "),
            sql.SQL("{} ON sized ({})").format(
                sql.Identifier(name), sql.SQL(", ").join(map(sql.Identifier, self.columns))
            ),
        ]
        if self.include:
            parts.append(sql.SQL(" INCLUDE ({})").format(sql.SQL(", ").join(map(sql.Identifier, self.include))))
        if self.where:
            parts.append(sql.SQL(" WHERE ") + sql.SQL(self.where))
        return sql.Composed(parts)


CASES = (
    Case("unique bigint", ("id",), unique=True),
    Case("bigint, every value distinct", ("id",)),
    Case("int, 20,000 values", ("user_id",)),
    Case("text, 4 values", ("status",)),
    Case("text, 50,000 values", ("code",)),
    Case("timestamptz, distinct", ("created",)),
    Case("uuid", ("u",)),
    Case("numeric (no deduplication)", ("amount",)),
    Case("nullable int, a third NULL", ("maybe",)),
    Case("composite int + timestamptz", ("user_id", "created")),
    Case("composite of two low-cardinality keys", ("cat", "status")),
    Case("INCLUDE (no deduplication)", ("user_id",), include=("amount",)),
    Case("partial", ("created",), where="status = 'new'"),
    Case("text of varying length, 30 values", ("note",)),
    Case("char(10), 7 values (bpchar: no deduplication)", ("mode",)),
    Case("char(10) + timestamptz (TPC-H's l_shipmode, l_receiptdate)", ("mode", "created")),
)


@dataclass(frozen=True)
class Measured:
    label: str
    built: int
    estimate: int
    hypopg: int

    @property
    def ratio(self) -> float:
        return self.estimate / self.built

    @property
    def hypopg_ratio(self) -> float:
        return self.hypopg / self.built


def measure(conn: psycopg.Connection[Any]) -> list[Measured]:
    """Each case estimated (dbmaint and hypopg), then built and measured, then dropped."""
    sizer = Sizer(conn)
    results = []
    for number, case in enumerate(CASES):
        name = f"sized_{number}"
        estimate = sizer.size("public", "sized", case.columns, case.include, case.where, unique=case.unique)
        text = case.statement(name).as_string(conn)
        row = conn.execute("SELECT hypopg_relation_size(indexrelid) FROM hypopg_create_index(%s)", (text,)).fetchone()
        conn.execute("SELECT hypopg_reset()")
        conn.execute(case.statement(name))
        built = conn.execute("SELECT pg_relation_size(%s::regclass)", (name,)).fetchone()
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        assert row is not None and built is not None
        results.append(Measured(case.label, int(built[0]), estimate, int(row[0])))
    return results


@dataclass(frozen=True)
class Params:
    rows: int


FULL = Params(rows=5_000_000)
QUICK = Params(rows=1_000_000)


@dataclass
class Result:
    params: Params
    measured: list[Measured] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.measured) and all(0.75 <= m.ratio <= 1.25 for m in self.measured)

    def to_json(self) -> dict[str, Any]:
        return {
            "params": asdict(self.params),
            "indexes": [
                {**asdict(m), "ratio": round(m.ratio, 3), "hypopg_ratio": round(m.hypopg_ratio, 3)}
                for m in self.measured
            ],
        }

    def summary(self) -> list[str]:
        lines = [f"index sizes on {self.params.rows:,} rows: built, dbmaint's estimate, hypopg's"]
        for m in self.measured:
            lines.append(
                f"  {m.label:40s} {common.format_bytes(m.built):>9s}  {common.format_bytes(m.estimate):>9s} "
                f"({m.ratio:4.2f})  {common.format_bytes(m.hypopg):>9s} ({m.hypopg_ratio:4.2f})"
            )
        return lines


def run(params: Params) -> Result:
    result = Result(params)
    with common.throwaway_cluster(SETTINGS) as cluster:
        dsn = common.create_database(cluster, "sizes")
        with psycopg.connect(dsn, autocommit=True) as conn:
            common.say(NAME, f"loading {params.rows:,} rows")
            for statement in setup(params.rows):
                conn.execute(statement)
            common.say(NAME, f"building {len(CASES)} indexes")
            result.measured = measure(conn)
    return result
