"""Recommended indexes -> one Alembic revision for the application's migrations, to be reviewed and merged.

The revision chains to the current head of the script directory and builds each index with
CREATE INDEX CONCURRENTLY in an autocommit block. It is self-contained (alembic, SQLAlchemy and the
driver, never dbmaint), so a deploy's ``alembic upgrade head`` runs it unchanged. Its docstring says
why each index is there: the advisor's reason and the statements it helps.
"""

from __future__ import annotations

import re
import textwrap
import unicodedata
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from string import Template

from alembic.script import ScriptDirectory
from alembic.util import rev_id

from dbmaint.model import MAX_IDENTIFIER_BYTES, IndexRecommendation, QueryBenefit

# This repository's migrations; only present in a source checkout (a wheel does not ship them).
DEFAULT_VERSIONS_DIR = Path(__file__).resolve().parent.parent / "migrations" / "versions"
# Same as file_template in pyproject.toml's [tool.alembic], so written and hand-made revisions sort alike.
FILE_TEMPLATE = "%(year)d%(month).2d%(day).2d_%(rev)s_%(slug)s"
SLUG_LENGTH = 40  # Alembic's default truncate_slug_length
LINE_LENGTH = 120  # the project's ruff line-length: a written revision passes ruff as it is
DOC_WIDTH = 110  # wrapped docstring prose, with room for characters that display wide
MAX_QUERIES = 5  # statements listed per index in the docstring

_SLUG_WORD = re.compile(r"\w+")
_ARGUMENT_INDENT = 12  # a call's arguments inside upgrade()'s and downgrade()'s autocommit block

_REVISION = Template('''\
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

EXISTING = sa.text(
    "SELECT c.relkind, i.indisvalid, t.relname AS table_name FROM pg_class c"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " LEFT JOIN pg_index i ON i.indexrelid = c.oid LEFT JOIN pg_class t ON t.oid = i.indrelid"
    " WHERE n.nspname = :schema AND c.relname = :name"
)


# (schema, index, table) of each index this revision builds.
INDEXES: list[tuple[str, str, str]] = $indexes


def index_state(schema: str, name: str, table: str) -> bool | None:
    """Whether this revision's index is there and valid; None if the name is free, or offline (--sql).

    A relation of that name that is not this table's index (a table, a view, a sequence, another table's
    index: they share one namespace per schema) stops the revision before it builds anything.
    """
    if op.get_context().as_sql:
        return None
    row = op.get_bind().execute(EXISTING, {"schema": schema, "name": name}).first()
    if row is None:
        return None
    if row.relkind not in ("i", "I") or row.table_name != table:
        raise RuntimeError(
            f"{schema}.{name} already exists and is not the index this revision builds on {table}: "
            "rename the index in this revision"
        )
    return bool(row.indisvalid)


def check_names(indexes: Sequence[tuple[str, str, str]]) -> None:
    """Every (schema, name, table) free or already this revision's index, before the first build."""
    for schema, name, table in indexes:
        index_state(schema, name, table)


def create_index_concurrently(
    name: str,
    table: str,
    columns: list[str],
    *,
    schema: str,
    include: Sequence[str] = (),
    where: str | None = None,
    directions: Sequence[str] = (),
) -> None:
    """CREATE INDEX CONCURRENTLY, unless a valid index of that name is there already (a re-run leaves it).

    An interrupted concurrent build (cancelled, timed out on a lock, failed) leaves an INVALID index under
    this name, which costs writes but is never used: it is dropped and built again, not taken for done.
    ``directions`` gives key columns an ordering ("DESC", "NULLS FIRST", ...) where a sort needs one.
    """
    valid = index_state(schema, name, table)
    if valid:
        return
    if valid is False:
        op.drop_index(name, schema=schema, postgresql_concurrently=True, if_exists=True)
    quote = op.get_context().dialect.identifier_preparer.quote
    keys: list[str | sa.ColumnElement[object]] = [
        sa.literal_column(f"{quote(column)} {direction}") if direction else column
        for column, direction in zip(columns, [*directions, *[""] * len(columns)], strict=False)
    ]
    op.create_index(
        name,
        table,
        keys,
        schema=schema,
        postgresql_concurrently=True,
        postgresql_include=list(include),
        # literal_column, not sa.text(): text() would take ":word" inside a quoted literal for a parameter.
        postgresql_where=None if where is None else sa.literal_column(where),
    )


def drop_index_concurrently(name: str, table: str, *, schema: str) -> None:
    """DROP INDEX CONCURRENTLY of this revision's index only: never a relation that merely shares its name."""
    if op.get_context().as_sql or index_state(schema, name, table) is not None:
        op.drop_index(name, schema=schema, postgresql_concurrently=True, if_exists=True)
$partition_helpers

def upgrade() -> None:
    # CONCURRENTLY cannot run inside a transaction. The block commits what ran before it, hence a
    # revision of its own for index work.
    with op.get_context().autocommit_block():
        # Give up on a lock after 5 s (behind a VACUUM or DDL, or waiting for old transactions), so the
        # deploy (and DDL queued behind it) never hangs in a lock queue; a timed-out build leaves an INVALID
        # index, which the next run redoes.
        op.execute("SET lock_timeout = '5s'")
        check_names(INDEXES)
$upgrades
        op.execute("RESET lock_timeout")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute("SET lock_timeout = '5s'")  # as in upgrade()
$downgrades
        op.execute("RESET lock_timeout")
''')


# Only in a revision with an index on a partitioned table.
_PARTITION_HELPERS = r'''

# Every table of a partitioned table's tree (itself at level 0), with each one's parent.
PARTITION_TREE = sa.text(
    "SELECT tree.level, c.relkind, cn.nspname AS schema, c.relname AS name, pn.nspname AS parent_schema,"
    " p.relname AS parent FROM pg_class r JOIN pg_namespace rn ON rn.oid = r.relnamespace"
    " CROSS JOIN LATERAL pg_partition_tree(r.oid) tree JOIN pg_class c ON c.oid = tree.relid"
    " JOIN pg_namespace cn ON cn.oid = c.relnamespace LEFT JOIN pg_class p ON p.oid = tree.parentrelid"
    " LEFT JOIN pg_namespace pn ON pn.oid = p.relnamespace"
    " WHERE rn.nspname = :schema AND r.relname = :table ORDER BY tree.level, cn.nspname, c.relname"
)
ATTACHED = sa.text(
    "SELECT EXISTS (SELECT FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :schema AND c.relname = :name)"
)


def partition_index_name(index: str, table: str, partition: str) -> str:
    """A partition's share of the index: the index's name with the partition's in place of the table's."""
    import hashlib

    name = partition + index[len(table) :] if index.startswith(f"{table}_") else f"{partition}_{index}"
    if len(name.encode()) <= 63:
        return name
    digest = hashlib.sha1(f"{partition}/{index}".encode()).hexdigest()[:6]
    return name.encode()[:52].decode(errors="ignore") + f"_{digest}_idx"


def quoted(*names: str) -> str:
    return ".".join(op.get_context().dialect.identifier_preparer.quote(name) for name in names)


def partition_tree(schema: str, name: str, table: str) -> list[tuple[sa.Row[tuple[object, ...]], str]]:
    """(row of PARTITION_TREE, the name of its index), parents before their partitions."""
    if op.get_context().as_sql:
        raise RuntimeError(f"{schema}.{table} is partitioned: its partitions are read from the database (no --sql)")
    rows = op.get_bind().execute(PARTITION_TREE, {"schema": schema, "table": table}).all()
    return [(row, name if row.level == 0 else partition_index_name(name, table, row.name)) for row in rows]


def create_partitioned_index(
    name: str,
    table: str,
    columns: list[str],
    *,
    schema: str,
    include: Sequence[str] = (),
    where: str | None = None,
    directions: Sequence[str] = (),
) -> None:
    """An index on a partitioned table, where CREATE INDEX CONCURRENTLY is refused and a plain CREATE INDEX
    blocks writes while it builds: each partition's index is built concurrently (the long part), the
    parents' are created ON ONLY (no scan, a moment's lock) and each partition's is attached, deepest
    first; the index is valid once all are. A re-run after an interruption keeps what is done.
    """
    if index_state(schema, name, table):
        return
    tree = partition_tree(schema, name, table)
    for row, index in tree:  # every name free (or already this revision's) before the first build
        index_state(row.schema, index, row.name)
    for row, index in tree:
        if row.relkind == "r":
            create_index_concurrently(
                index, row.name, columns, schema=row.schema, include=include, where=where, directions=directions
            )
    orderings = [*directions, *[""] * len(columns)]
    keys = ", ".join(f"{quoted(c)} {d}".strip() for c, d in zip(columns, orderings, strict=False))
    for row, index in tree:
        if row.relkind == "p" and index_state(row.schema, index, row.name) is None:
            statement = f"CREATE INDEX {quoted(index)} ON ONLY {quoted(row.schema, row.name)} ({keys})"
            if include:
                statement += f" INCLUDE ({', '.join(quoted(c) for c in include)})"
            if where is not None:
                statement += f" WHERE {where}"
            op.execute(sa.text(statement.replace(":", "\\:")))  # a ":word" in the WHERE is no parameter
    names = {(row.schema, row.name): index for row, index in tree}
    for row, index in sorted(tree, key=lambda item: -item[0].level):
        if row.level == 0 or row.relkind not in ("r", "p"):
            continue
        if not op.get_bind().execute(ATTACHED, {"schema": row.schema, "name": index}).scalar():
            parent = quoted(row.parent_schema, names[(row.parent_schema, row.parent)])
            op.execute(f"ALTER INDEX {parent} ATTACH PARTITION {quoted(row.schema, index)}")


def drop_partitioned_index(name: str, table: str, *, schema: str) -> None:
    """DROP INDEX of the parent's index (refused CONCURRENTLY on a partitioned index; it takes the attached
    ones with it, under lock_timeout), then of any partition's index an interrupted build left unattached."""
    tree = partition_tree(schema, name, table)
    if index_state(schema, name, table) is not None:
        op.execute(f"DROP INDEX IF EXISTS {quoted(schema, name)}")
    for row, index in tree:
        if row.level > 0 and index_state(row.schema, index, row.name) is not None:
            if row.relkind == "r":
                drop_index_concurrently(index, row.name, schema=row.schema)
            else:
                op.execute(f"DROP INDEX IF EXISTS {quoted(row.schema, index)}")
'''


def pending_index_names(versions_dir: Path) -> set[str]:
    """Index names the revisions already in ``versions_dir`` create (by dbmaint's create_index_concurrently)."""
    names: set[str] = set()
    for path in versions_dir.glob("*.py"):
        text = path.read_text(encoding="utf-8", errors="replace")
        for chunk in re.split(r"create_(?:index_concurrently|partitioned_index)\(", text)[1:]:
            first = chunk.strip().split(",", 1)[0].strip()
            if len(first) >= 2 and first[0] == first[-1] and first[0] in "\"'":
                names.add(first[1:-1])
    return names


def write_revision(
    recommendations: Sequence[IndexRecommendation],
    versions_dir: Path,
    *,
    message: str | None = None,
    script_location: Path | None = None,
) -> Path:
    """Write one revision creating ``recommendations``, chained to the head of ``versions_dir``.

    ``script_location`` is the Alembic environment (env.py, script.py.mako); by default the parent of
    ``versions_dir``. Raises ValueError for recommendations PostgreSQL or the revision could not handle,
    and alembic's CommandError when the directory has several heads.
    """
    check_recommendations(recommendations)
    message = message or default_message(recommendations)
    return write_source(
        versions_dir,
        message,
        lambda **parts: render_revision(recommendations, message=message, **parts),
        script_location=script_location,
    )


def write_source(
    versions_dir: Path, message: str, render: Callable[..., str], *, script_location: Path | None = None
) -> Path:
    """Write the revision ``render(revision=, down_revision=, create_date=)`` gives, chained to the head of
    ``versions_dir``, under a file name made from ``message`` as Alembic makes it."""
    if not versions_dir.is_dir():
        raise FileNotFoundError(f"no Alembic versions directory at {versions_dir}")
    script = ScriptDirectory(
        str(script_location or versions_dir.parent), version_locations=[str(versions_dir)], file_template=FILE_TEMPLATE
    )
    revision = rev_id()
    create_date = datetime.now(UTC).replace(microsecond=0)
    source = render(revision=revision, down_revision=script.get_current_head(), create_date=create_date)
    path = versions_dir / f"{FILE_TEMPLATE % _file_name_parts(revision, message, create_date)}.py"
    compile(source, str(path), "exec")  # a rendering bug fails here, not in a deploy
    with path.open("x", encoding="utf-8") as file:
        file.write(source)
    return path


def render_revision(
    recommendations: Sequence[IndexRecommendation],
    *,
    revision: str,
    down_revision: str | None,
    create_date: datetime,
    message: str,
) -> str:
    """The revision's source text (pure: the golden-file test renders it with a fixed id and date)."""
    check_recommendations(recommendations)
    return _REVISION.substitute(
        docstring=_docstring(recommendations, revision, down_revision, create_date, message),
        revision=literal(revision),
        down_revision="None" if down_revision is None else literal(down_revision),
        indexes=_indexes(recommendations),
        upgrades="\n".join(_create_call(rec) for rec in recommendations),
        partition_helpers=_PARTITION_HELPERS if any(rec.partitioned for rec in recommendations) else "",
        downgrades="\n".join(_drop_call(rec) for rec in reversed(recommendations)),
    )


def default_message(recommendations: Sequence[IndexRecommendation]) -> str:
    names = ", ".join(rec.name for rec in recommendations)
    return f"Add index {names}" if len(recommendations) == 1 else f"Add indexes {names}"


def check_recommendations(recommendations: Sequence[IndexRecommendation]) -> None:
    """Refuse what would make a broken revision: nothing to do, a name twice, names PostgreSQL truncates, ..."""
    if not recommendations:
        raise ValueError("no index recommendations to write a revision for")
    seen: set[tuple[str, str]] = set()
    for rec in recommendations:
        if (rec.schema, rec.name) in seen:
            raise ValueError(f"index {rec.schema}.{rec.name} is recommended twice")
        seen.add((rec.schema, rec.name))
        if not rec.columns:
            raise ValueError(f"index {rec.name} has no columns")
        if rec.where is not None and not rec.where.strip():
            raise ValueError(f"index {rec.name} has an empty WHERE")  # not quietly a full index instead
        for identifier in (rec.schema, rec.table_name, rec.name, *rec.columns, *rec.include):
            if not identifier or len(identifier.encode()) > MAX_IDENTIFIER_BYTES:
                # A truncated index name could not be found again by the revision's validity check.
                raise ValueError(f"index {rec.name}: {identifier!r} is not a PostgreSQL identifier (1 to 63 bytes)")


def _file_name_parts(revision: str, message: str, create_date: datetime) -> dict[str, object]:
    """FILE_TEMPLATE's fields, the slug cut as Alembic cuts it."""
    slug = "_".join(_SLUG_WORD.findall(message)).lower()
    if len(slug) > SLUG_LENGTH:
        slug = slug[:SLUG_LENGTH].rsplit("_", 1)[0] + "_"
    return {"rev": revision, "slug": slug, "year": create_date.year, "month": create_date.month, "day": create_date.day}


# -- the docstring ---------------------------------------------------------------------------------------


def _docstring(
    recommendations: Sequence[IndexRecommendation],
    revision: str,
    down_revision: str | None,
    create_date: datetime,
    message: str,
) -> str:
    paragraphs = [
        wrap(plain(message)),
        wrap(
            "Written by dbmaint from its index advisor's recommendations: review before merging. Each index is"
            " built with CREATE INDEX CONCURRENTLY outside a transaction; keep this revision to index work alone."
        ),
        *(_index_section(rec) for rec in recommendations),
        f"Revision ID: {revision}\nRevises: {down_revision or ''}".rstrip() + f"\nCreate Date: {create_date}",
    ]
    return "\n\n".join(paragraphs)


def _index_section(rec: IndexRecommendation) -> str:
    orderings = [*rec.directions, *[""] * len(rec.columns)]
    keys = [f"{c} {d}" if d else c for c, d in zip(rec.columns, orderings, strict=False)]
    shape = f"{rec.name} on {rec.table} ({', '.join(keys)})"
    if rec.include:
        shape += f" INCLUDE ({', '.join(rec.include)})"
    if rec.where:
        shape += f" WHERE {rec.where}"
    lines = [wrap(plain(shape), indent="    ")]
    if rec.reason.strip():
        lines.append(wrap(plain(rec.reason), first="    Why: ", indent="         "))
    if rec.queries:
        lines.append("    Helps:")
        lines.extend(_query_line(query) for query in rec.queries[:MAX_QUERIES])
        if len(rec.queries) > MAX_QUERIES:
            lines.append(f"    - and {len(rec.queries) - MAX_QUERIES} more")
    return "\n".join(lines)


def _query_line(query: QueryBenefit) -> str:
    head = f"    - {query.calls:,} calls, cost {query.cost_before:,.1f} -> {query.cost_after:,.1f}: "
    return head + _clip(plain(query.query), LINE_LENGTH - len(head))


def plain(text: str) -> str:
    """One line of printable text that cannot end the (raw) docstring: statements and reasons arrive with
    newlines, tabs, backslashes, quotes, anything."""
    line = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return line.replace('"""', '""\\"')


def wrap(text: str, *, first: str = "", indent: str = "") -> str:
    wrapped = textwrap.fill(text, DOC_WIDTH, initial_indent=first, subsequent_indent=indent)
    return "\n".join(_clip(line, LINE_LENGTH) for line in wrapped.splitlines())  # wide characters


def _clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` display columns, with an ellipsis when cut."""
    if display_width(text) <= width:
        return text
    kept = ""
    for ch in text:
        if display_width(kept + ch) > width - 1:
            break
        kept += ch
    return kept.rstrip() + "…"


def display_width(text: str) -> int:
    """Display columns, as ruff counts a line's length (East Asian wide characters count two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


# -- the code ----------------------------------------------------------------------------------------------


def _create_call(rec: IndexRecommendation) -> str:
    arguments = [literal(rec.name), literal(rec.table_name), _list("", rec.columns), f"schema={literal(rec.schema)}"]
    if rec.include:
        arguments.append(_list("include=", rec.include))
    if rec.where is not None:
        arguments.append(f"where={literal(rec.where)}")
    if any(rec.directions):
        arguments.append(_list("directions=", rec.directions))
    # Always one argument a line (the trailing comma keeps ruff format from joining them): easy to review.
    function = "create_partitioned_index" if rec.partitioned else "create_index_concurrently"
    return "\n".join([f"        {function}(", *_argument_lines(arguments), "        )"])


def _indexes(recommendations: Sequence[IndexRecommendation]) -> str:
    """The INDEXES list: (schema, index, table), one a line."""
    lines = ["["]
    for rec in recommendations:
        values = [literal(rec.schema), literal(rec.name), literal(rec.table_name)]
        one_line = f"    ({', '.join(values)}),"
        lines += (
            [one_line]
            if display_width(one_line) <= LINE_LENGTH
            else ["    (", *(f"        {v}," for v in values), "    ),"]
        )
    return "\n".join([*lines, "]"])


def _drop_call(rec: IndexRecommendation) -> str:
    arguments = [literal(rec.name), literal(rec.table_name), f"schema={literal(rec.schema)}"]
    function = "drop_partitioned_index" if rec.partitioned else "drop_index_concurrently"
    one_line = f"        {function}({', '.join(arguments)})"
    if display_width(one_line) <= LINE_LENGTH:
        return one_line
    return "\n".join([f"        {function}(", *_argument_lines(arguments), "        )"])


def _list(prefix: str, items: Sequence[str]) -> str:
    """An argument ``prefix[...]``: on one line if it fits, else one item a line with a trailing comma."""
    one_line = f"{prefix}[{', '.join(literal(item) for item in items)}]"
    if _ARGUMENT_INDENT + display_width(one_line) + 1 <= LINE_LENGTH:
        return one_line
    pad = " " * _ARGUMENT_INDENT
    return "\n".join([f"{prefix}[", *(f"{pad}    {literal(item)}," for item in items), f"{pad}]"])


def _argument_lines(arguments: Sequence[str]) -> list[str]:
    """Arguments of a call in upgrade()/downgrade(), one a line with a trailing comma; a string too long for
    any line (a long WHERE) is excused from E501, as ruff format cannot split it either."""
    lines = []
    for argument in arguments:
        for line in f"{' ' * _ARGUMENT_INDENT}{argument},".split("\n"):
            lines.append(f"{line}  # noqa: E501" if display_width(line) > LINE_LENGTH else line)
    return lines


def literal(text: str) -> str:
    """A Python string literal, in the quotes ruff format prefers: double, unless single needs fewer escapes."""
    quote = "'" if text.count('"') > text.count("'") else '"'
    escaped = (f"\\{ch}" if ch in ("\\", quote) else ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
    return quote + "".join(escaped) + quote
