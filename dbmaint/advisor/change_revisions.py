"""Reviewed schema changes besides new indexes, each as an Alembic revision of its own: drops of unused and
duplicate indexes, and per-table autovacuum settings.

Like the index revisions (:mod:`dbmaint.advisor.revision`), a revision is self-contained (alembic and
SQLAlchemy only), chains to the head of the script directory, says in its docstring why each change is
there, and never blocks the application for long: a drop is DROP INDEX CONCURRENTLY, and its downgrade
builds the exact definition again CONCURRENTLY; a setting takes a SHARE UPDATE EXCLUSIVE lock for a moment.
Both give up on a lock after 5 s.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from string import Template

from dbmaint.advisor.revision import LINE_LENGTH, display_width, literal, plain, wrap, write_source

# pg_get_indexdef() prints "CREATE [UNIQUE] INDEX name ON [ONLY] table USING ...".
_INDEXDEF = re.compile(r"^CREATE (UNIQUE )?INDEX (.+?) ON (?!ONLY )")


@dataclass(frozen=True)
class IndexDrop:
    """An index to drop, as PostgreSQL prints it, and why (the advisor's finding)."""

    schema: str
    name: str
    table: str
    definition: str  # pg_get_indexdef(): what the downgrade builds again
    kind: str  # unused_index, duplicate_index, redundant_index
    reason: str

    @property
    def rebuild(self) -> str:
        """The definition built without blocking writes, and only if the name is free."""
        rebuilt, count = _INDEXDEF.subn(r"CREATE \1INDEX CONCURRENTLY IF NOT EXISTS \2 ON ", self.definition, count=1)
        if count != 1:
            raise ValueError(f"index {self.schema}.{self.name}: cannot rebuild {self.definition!r} concurrently")
        return rebuilt


@dataclass(frozen=True)
class SettingChange:
    """A table's autovacuum reloption: from ``before`` (None: unset, the server's value) to ``after``."""

    schema: str
    table: str
    setting: str
    before: str | None
    after: str
    reason: str


_HEADER = Template('''\
r"""$docstring
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = $revision
down_revision: str | Sequence[str] | None = $down_revision
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def quoted(*names: str) -> str:
    preparer = op.get_context().dialect.identifier_preparer
    return ".".join(preparer.quote(name) for name in names)


def run(statement: str) -> None:
    """The statement as it is: a colon in a name or a literal is not a bind parameter."""
    op.execute(sa.text(statement.replace(":", "\\\\:")))
''')

_DROPS = Template('''
# (schema, index, table, the statement that builds it again) of each index this revision drops.
DROPS: list[tuple[str, str, str, str]] = $drops

INDEX_OF = sa.text(
    "SELECT t.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
    " JOIN pg_index i ON i.indexrelid = c.oid JOIN pg_class t ON t.oid = i.indrelid"
    " WHERE n.nspname = :schema AND c.relname = :name AND c.relkind = 'i'"
)


def index_of(schema: str, name: str) -> str | None:
    """The table whose index ``name`` is; None if no index has that name (offline, --sql: assumed ours)."""
    if op.get_context().as_sql:
        return None
    table: str | None = op.get_bind().execute(INDEX_OF, {"schema": schema, "name": name}).scalar()
    return table


def upgrade() -> None:
    # CONCURRENTLY cannot run inside a transaction: a revision of its own for index work.
    with op.get_context().autocommit_block():
        op.execute("SET lock_timeout = '5s'")
        for schema, name, table, _ in DROPS:
            # Only that table's index of that name: never another relation that took the name since.
            if op.get_context().as_sql or index_of(schema, name) == table:
                run(f"DROP INDEX CONCURRENTLY IF EXISTS {quoted(schema, name)}")
        op.execute("RESET lock_timeout")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("SET lock_timeout = '5s'")
        for _, _, _, rebuild in reversed(DROPS):
            run(rebuild)
        op.execute("RESET lock_timeout")
''')

_SETTINGS = Template("""
# (schema, table, setting, value before (None: unset), value after) of each change.
SETTINGS: list[tuple[str, str, str, str | None, str]] = $settings


def _set(schema: str, table: str, setting: str, value: str | None) -> None:
    target = quoted(schema, table)
    if value is None:
        run(f"ALTER TABLE {target} RESET ({setting})")
    else:
        run(f"ALTER TABLE {target} SET ({setting} = {float(value)!r})")


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")  # SHARE UPDATE EXCLUSIVE, for a moment: never queue for long
    for schema, table, setting, _, after in SETTINGS:
        _set(schema, table, setting, after)


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    for schema, table, setting, before, _ in reversed(SETTINGS):
        _set(schema, table, setting, before)
""")

_SETTING_NAMES = ("autovacuum_vacuum_scale_factor", "autovacuum_vacuum_insert_scale_factor")


def render_drops(
    drops: Sequence[IndexDrop], *, revision: str, down_revision: str | None, create_date: datetime, message: str
) -> str:
    if not drops:
        raise ValueError("no index to drop")
    sections = [
        wrap(plain(f"{d.schema}.{d.name} on {d.schema}.{d.table}: {d.reason}"), first="- ", indent="  ") for d in drops
    ]
    intro = (
        "Written by dbmaint from its index advisor's findings: review before merging. Each index is dropped"
        " with DROP INDEX CONCURRENTLY outside a transaction; the downgrade builds it again, CONCURRENTLY,"
        " from its exact definition."
    )
    rows = [[literal(v) for v in (d.schema, d.name, d.table, d.rebuild)] for d in drops]
    return _render(
        message, intro, sections, revision, down_revision, create_date, _DROPS.substitute(drops=_table(rows))
    )  # fmt: skip


def render_settings(
    changes: Sequence[SettingChange], *, revision: str, down_revision: str | None, create_date: datetime, message: str
) -> str:
    if not changes:
        raise ValueError("no autovacuum setting to change")
    for change in changes:
        if change.setting not in _SETTING_NAMES:
            raise ValueError(f"{change.setting} is not an autovacuum setting this revision writes")
        for value in (change.before, change.after):
            if value is not None:
                float(value)  # ValueError for anything but a number
    sections = [
        wrap(plain(f"{c.schema}.{c.table}: {c.setting} {c.before or 'unset'} -> {c.after}. {c.reason}"),
             first="- ", indent="  ")
        for c in changes
    ]  # fmt: skip
    intro = (
        "Written by dbmaint from its checklist's autovacuum advice: review before merging. Each setting is a"
        " table's storage parameter (ALTER TABLE ... SET), taken under a brief SHARE UPDATE EXCLUSIVE lock."
    )
    rows = [
        [literal(v) if v is not None else "None" for v in (c.schema, c.table, c.setting, c.before, c.after)]
        for c in changes
    ]
    return _render(
        message, intro, sections, revision, down_revision, create_date, _SETTINGS.substitute(settings=_table(rows))
    )  # fmt: skip


def _table(rows: Sequence[Sequence[str]]) -> str:
    """A list of tuples as ruff format writes it: one tuple a line where it fits, else one value a line (a
    value longer than any line, such as an index definition, excused from E501 as ruff cannot split it)."""
    lines = ["["]
    for values in rows:
        one_line = f"    ({', '.join(values)}),"
        if display_width(one_line) <= LINE_LENGTH:
            lines.append(one_line)
            continue
        lines.append("    (")
        for value in values:
            line = f"        {value},"
            lines.append(line + ("  # noqa: E501" if display_width(line) > LINE_LENGTH else ""))
        lines.append("    ),")
    return "\n".join([*lines, "]"])


def _render(
    message: str,
    intro: str,
    sections: Sequence[str],
    revision: str,
    down_revision: str | None,
    create_date: datetime,
    body: str,
) -> str:
    docstring = "\n\n".join(
        [
            wrap(plain(message)),
            wrap(intro),
            "\n".join(sections),
            f"Revision ID: {revision}\nRevises: {down_revision or ''}".rstrip() + f"\nCreate Date: {create_date}",
        ]
    )
    header = _HEADER.substitute(
        docstring=docstring,
        revision=literal(revision),
        down_revision="None" if down_revision is None else literal(down_revision),
    )
    return header + "\n" + body


def write_drops(drops: Sequence[IndexDrop], versions_dir: Path) -> Path:
    names = ", ".join(d.name for d in drops)
    message = f"Drop index {names}" if len(drops) == 1 else f"Drop indexes {names}"
    return write_source(versions_dir, message, lambda **parts: render_drops(drops, message=message, **parts))


def write_settings(changes: Sequence[SettingChange], versions_dir: Path) -> Path:
    tables = ", ".join(dict.fromkeys(c.table for c in changes))
    message = f"Autovacuum settings of {tables}"
    return write_source(versions_dir, message, lambda **parts: render_settings(changes, message=message, **parts))
