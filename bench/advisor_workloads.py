"""The two databases of the advisor benchmark, and the statements run against them.

``shop``: an application's database (accounts, users, products, orders, order items) with the indexes a
first schema usually has, primary keys only, and a fixed workload of parameterized statements that the
missing indexes hurt, plus a decoy no index can help.

``many``: a few dozen tables of the same make-up and a generated workload of distinct statement shapes
(equalities on one or two columns, ORDER BY ... LIMIT, ranges, equality with range, joins), to time the
advisor on a pg_stat_statements as full as ``advisor.max_statements`` lets it read.

Every statement is SQL with ``%s`` and no literal: psycopg sends the values with the extended protocol, so
pg_stat_statements records the text with ``$1``, ``$2`` ... in place of each ``%s``, exactly as it does an
application's statements, and ``pgss_text()`` knows which entry is which.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import sql

EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
STATUSES = ("paid", "shipped", "cancelled", "pending")


@dataclass(frozen=True)
class Query:
    """One statement of a workload: SQL with %s, and the parameters of its i-th execution."""

    name: str
    text: str
    params: Callable[[int], tuple[Any, ...]]
    decoy: bool = False  # no index can make it cheaper: the advisor must leave it alone

    @property
    def pgss_text(self) -> str:
        return pgss_text(self.text)


def pgss_text(text: str) -> str:
    """The text pg_stat_statements records for ``text`` sent with parameters: each %s becomes $1, $2 ..."""
    parts = text.split("%s")
    return parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], start=1))


# ---------------------------------------------------------------------------------------------------- shop


@dataclass(frozen=True)
class ShopSize:
    accounts: int
    users: int
    products: int
    orders: int
    items_per_order: int

    @property
    def order_items(self) -> int:
        return self.orders * self.items_per_order


def shop_schema(size: ShopSize) -> list[sql.Composable]:
    """Tables loaded bare, then keys: building an index once is much faster than maintaining it per row.

    Foreign keys are declared, as an application's schema does, but only primary keys are indexed: the
    foreign keys orders.account_id, orders.user_id, users.account_id and order_items.product_id are not.
    Orders are appended in time order (created_at follows id), as they are in production; an account's or
    a user's orders are spread over the whole table.
    """
    n = {name: sql.Literal(value) for name, value in vars(size).items()}
    statements = [
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
        "CREATE EXTENSION IF NOT EXISTS hypopg",
        "CREATE TABLE accounts (id int NOT NULL, name text NOT NULL, plan text NOT NULL,"
        " created_at timestamptz NOT NULL)",
        "CREATE TABLE users (id int NOT NULL, account_id int NOT NULL, email text NOT NULL,"
        " created_at timestamptz NOT NULL)",
        "CREATE TABLE products (id int NOT NULL, sku text NOT NULL, name text NOT NULL, price_cents int NOT NULL)",
        "CREATE TABLE orders (id bigint NOT NULL, account_id int NOT NULL, user_id int NOT NULL, status text NOT NULL,"
        " created_at timestamptz NOT NULL, total_cents int NOT NULL)",
        "CREATE TABLE order_items (order_id bigint NOT NULL, product_id int NOT NULL, quantity int NOT NULL,"
        " price_cents int NOT NULL)",
    ]
    loads = [
        "INSERT INTO accounts SELECT g, 'account ' || g, (ARRAY['free', 'team', 'enterprise'])[1 + g % 3],"
        " {epoch} - g * interval '1 hour' FROM generate_series(1, {accounts}) g",
        # A user belongs to account 1 + id % accounts; an order's account is its user's.
        "INSERT INTO users SELECT g, 1 + g % {accounts}, 'user' || g || '@example.com',"
        " {epoch} - g * interval '1 minute' FROM generate_series(1, {users}) g",
        "INSERT INTO products SELECT g, 'SKU-' || lpad(g::text, 6, '0'), 'product ' || g, 100 + g * 37 % 9900"
        " FROM generate_series(1, {products}) g",
        # 60% paid, 30% shipped, 5% cancelled, 5% pending.
        "INSERT INTO orders SELECT g, 1 + u % {accounts}, u,"
        " CASE WHEN g % 20 < 12 THEN 'paid' WHEN g % 20 < 18 THEN 'shipped' WHEN g % 20 < 19 THEN 'cancelled'"
        " ELSE 'pending' END, {epoch} + g * interval '30 seconds', g * 37 % 100000"
        " FROM generate_series(1, {orders}) g"
        " CROSS JOIN LATERAL (SELECT (1 + (g::bigint * 7919) % {users})::int AS u) x",
        "INSERT INTO order_items SELECT o, 1 + (o * 31 + k * 7919) % {products}, 1 + (o + k) % 4, 100 + o % 9900"
        " FROM generate_series(1, {orders}) o, generate_series(0, {items_per_order} - 1) k",
    ]
    keys = [
        "ALTER TABLE accounts ADD PRIMARY KEY (id)",
        "ALTER TABLE users ADD PRIMARY KEY (id)",
        "ALTER TABLE products ADD PRIMARY KEY (id)",
        "ALTER TABLE orders ADD PRIMARY KEY (id)",
        "ALTER TABLE order_items ADD PRIMARY KEY (order_id, product_id)",
        "ALTER TABLE users ADD FOREIGN KEY (account_id) REFERENCES accounts",
        "ALTER TABLE orders ADD FOREIGN KEY (account_id) REFERENCES accounts",
        "ALTER TABLE orders ADD FOREIGN KEY (user_id) REFERENCES users",
        "ALTER TABLE order_items ADD FOREIGN KEY (order_id) REFERENCES orders",
        "ALTER TABLE order_items ADD FOREIGN KEY (product_id) REFERENCES products",
    ]
    result: list[sql.Composable] = [sql.SQL(s) for s in statements]
    result += [sql.SQL(s).format(epoch=sql.Literal(EPOCH), **n) for s in loads]
    result += [sql.SQL(s) for s in keys]
    return result


def shop_workload(size: ShopSize) -> tuple[Query, ...]:
    """What an order-management application asks most, each with the index it lacks in a comment."""

    def account(i: int) -> int:
        return 1 + (i * 37) % size.accounts

    def user(i: int) -> int:
        return 1 + (i * 101) % size.users

    def day(i: int) -> tuple[datetime, datetime]:
        span_days = max(1, size.orders * 30 // 86_400)  # orders come every 30 seconds
        start = EPOCH + timedelta(days=(i * 7) % span_days)
        return start, start + timedelta(days=1)

    return (
        # An account's latest orders in a status: two equalities, ORDER BY ... LIMIT; an unindexed foreign key.
        Query(
            "account_orders",
            "SELECT id, created_at, total_cents FROM orders WHERE account_id = %s AND status = %s"
            " ORDER BY created_at DESC LIMIT %s",
            lambda i: (account(i), STATUSES[i % len(STATUSES)], 20),
        ),
        # A user's order history: the unindexed foreign key orders.user_id, sorted.
        Query(
            "user_orders",
            "SELECT id, status, total_cents FROM orders WHERE user_id = %s ORDER BY created_at DESC",
            lambda i: (user(i),),
        ),
        # Who bought this product: order_items.product_id, which the primary key (order_id, ...) cannot serve.
        Query(
            "product_buyers",
            "SELECT order_id, quantity FROM order_items WHERE product_id = %s",
            lambda i: (1 + (i * 53) % size.products,),
        ),
        # An account's users: the unindexed foreign key users.account_id.
        Query(
            "account_users",
            "SELECT id, email FROM users WHERE account_id = %s ORDER BY id",
            lambda i: (account(i),),
        ),
        # Log-in: a lookup by e-mail address.
        Query(
            "user_by_email",
            "SELECT id, account_id FROM users WHERE email = %s",
            lambda i: (f"user{user(i)}@example.com",),
        ),
        # A day's revenue: a range on created_at.
        Query(
            "revenue_of_a_day",
            "SELECT count(*), sum(total_cents) FROM orders WHERE created_at >= %s AND created_at < %s",
            day,
        ),
        # A user's recent orders with their lines: joins through two primary keys after orders.user_id.
        Query(
            "user_order_lines",
            "SELECT o.id, o.created_at, p.name, oi.quantity FROM orders o"
            " JOIN order_items oi ON oi.order_id = o.id JOIN products p ON p.id = oi.product_id"
            " WHERE o.user_id = %s ORDER BY o.created_at DESC LIMIT %s",
            lambda i: (user(i + 1), 50),
        ),
        # The decoy: 60% of the orders are paid; counting them reads most of the table whatever the index.
        Query("paid_orders", "SELECT count(*) FROM orders WHERE status = %s", lambda i: ("paid",), decoy=True),
    )


# The set a careful DBA would build by hand for shop_workload, to hold the advisor's against: one index per
# access path, composites where a statement filters and sorts, nothing for the decoy.
SHOP_HANDMADE = (
    "CREATE INDEX handmade_orders_account ON orders (account_id, status, created_at)",  # account_orders
    "CREATE INDEX handmade_orders_user ON orders (user_id, created_at)",  # user_orders, user_order_lines
    "CREATE INDEX handmade_items_product ON order_items (product_id)",  # product_buyers
    "CREATE INDEX handmade_users_account ON users (account_id)",  # account_users
    "CREATE INDEX handmade_users_email ON users (email)",  # user_by_email
    "CREATE INDEX handmade_orders_created ON orders (created_at)",  # revenue_of_a_day
)


# ---------------------------------------------------------------------------------------------------- many

# Columns of every generated table: (name, type, value of row g). a, b, c, e have 1000, 50, 200 and 10
# distinct values spread over the table; d follows the row number (rows are appended in time order).
MANY_COLUMNS = (
    ("a", "int", "(g * 7) % 1000"),
    ("b", "int", "(g * 13) % 50"),
    ("c", "text", "'c' || (g * 17) % 200"),
    ("d", "timestamptz", "{epoch} + g * interval '1 minute'"),
    ("e", "int", "g % 10"),
    ("f", "int", "(g * 53) % 10000"),
    ("payload", "text", "md5(g::text)"),
)
EQUALITY = ("a", "b", "c", "e", "parent_id")
SORTS = ("d", "f", "id")
RANGES = ("a", "d", "f")
JOINED = ("a", "b", "e")


# Names without digits: dbmaint merges pg_stat_statements entries by pglast's fingerprint, which ignores
# digits at the end of a table name (and the schema), so statements on t01 and t02 would count as one.
MANY_TABLES = (
    "accounts", "addresses", "audit_events", "carts", "cart_items", "categories", "comments", "coupons",
    "customers", "deliveries", "devices", "discounts", "documents", "employees", "events", "favorites",
    "invoices", "invoice_lines", "messages", "notes", "notifications", "offices", "payments", "permissions",
    "projects", "refunds", "regions", "reviews", "roles", "sessions", "shipments", "stores", "subscriptions",
    "suppliers", "tags", "tasks", "teams", "tickets", "vendors", "warehouses",
)  # fmt: skip


def many_table(index: int) -> str:
    return MANY_TABLES[index]


def many_schema(tables: int, rows: int) -> Iterator[sql.Composable]:
    """``tables`` of MANY_TABLES; the parent_id of each references the one before, unindexed (the first's
    references nothing)."""
    if tables > len(MANY_TABLES):
        raise ValueError(f"at most {len(MANY_TABLES)} tables")
    columns = sql.SQL(", ").join(sql.SQL(f"{name} {kind} NOT NULL") for name, kind, _ in MANY_COLUMNS)
    values = sql.SQL(", ".join(expression for _, _, expression in MANY_COLUMNS)).format(epoch=sql.Literal(EPOCH))
    yield sql.SQL("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    yield sql.SQL("CREATE EXTENSION IF NOT EXISTS hypopg")
    for k in range(tables):
        t = sql.Identifier(many_table(k))
        yield sql.SQL("CREATE TABLE {t} (id int NOT NULL, parent_id int NOT NULL, {columns})").format(
            t=t, columns=columns
        )
        yield sql.SQL(
            "INSERT INTO {t} SELECT g, 1 + (g * 31) % {rows}, {values} FROM generate_series(1, {rows}) g"
        ).format(t=t, rows=sql.Literal(rows), values=values)
        yield sql.SQL("ALTER TABLE {t} ADD PRIMARY KEY (id)").format(t=t)
        if k > 0:
            yield sql.SQL("ALTER TABLE {t} ADD FOREIGN KEY (parent_id) REFERENCES {parent}").format(
                t=t, parent=sql.Identifier(many_table(k - 1))
            )


def _value(column: str, i: int, rows: int) -> Any:
    """A value column ``column`` holds, different for each i."""
    if column == "c":
        return f"c{(i * 13) % 200}"
    if column == "d":
        return EPOCH + timedelta(minutes=1 + (i * 997) % rows)
    modulus = {"a": 1000, "b": 50, "e": 10, "f": 10000}.get(column)
    return (i * 37) % modulus if modulus else 1 + (i * 101) % rows  # parent_id, id


def _upper(column: str, low: Any) -> Any:
    """The upper end of a narrow range starting at ``low``."""
    return low + timedelta(hours=6) if column == "d" else low + 10


# Statement shapes over table {t}; {child} is the table whose parent_id references {t} (unindexed: the
# inner side of a nested loop), {x} and {y} are equality columns, {o} a sort column and {r} a range column.
SINGLE = "SELECT id, {x} FROM {t} WHERE {x} = %s"
SORTED = "SELECT id, {o} FROM {t} WHERE {x} = %s ORDER BY {o} DESC LIMIT %s"
EQ_RANGE = "SELECT id, {r} FROM {t} WHERE {x} = %s AND {r} > %s"
JOIN = "SELECT {t}.id, {child}.{y} FROM {t} JOIN {child} ON {child}.parent_id = {t}.id WHERE {t}.{x} = %s"
PAIR = "SELECT id, d FROM {t} WHERE {x} = %s AND {y} = %s"
PAIR_SORTED = "SELECT * FROM {t} WHERE {x} = %s AND {y} = %s ORDER BY {o} LIMIT %s"
RANGE = "SELECT count(*) FROM {t} WHERE {r} >= %s AND {r} < %s"


def _table_shapes(k: int, tables: int, rows: int) -> list[Query]:
    """Every statement shape over table k (92 of them), in a fixed pseudo-random order."""
    names = {"t": many_table(k), "child": many_table((k + 1) % tables)}
    shapes: list[tuple[str, dict[str, str], Callable[[int], tuple[Any, ...]]]] = []

    def eq(*columns: str) -> Callable[[int], tuple[Any, ...]]:
        return lambda i: tuple(_value(c, i + n, rows) for n, c in enumerate(columns))

    for x in EQUALITY:
        shapes.append((SINGLE, {"x": x}, eq(x)))
        shapes += [(SORTED, {"x": x, "o": o}, _then(eq(x), 10)) for o in SORTS]
        shapes += [(EQ_RANGE, {"x": x, "r": r}, eq(x, r)) for r in RANGES if r != x]
        shapes += [(JOIN, {"x": x, "y": y}, eq(x)) for y in JOINED]
    for n, x in enumerate(EQUALITY):
        for y in EQUALITY[n + 1 :]:
            shapes.append((PAIR, {"x": x, "y": y}, eq(x, y)))
            shapes += [(PAIR_SORTED, {"x": x, "y": y, "o": o}, _then(eq(x, y), 20)) for o in SORTS]
    shapes += [(RANGE, {"r": r}, _range(r, rows)) for r in RANGES]
    random.Random(k).shuffle(shapes)  # seeded: the same statements every run
    return [
        Query(f"{names['t']}#{n}", template.format(**names, **columns), params)
        for n, (template, columns, params) in enumerate(shapes)
    ]


def _then(params: Callable[[int], tuple[Any, ...]], limit: int) -> Callable[[int], tuple[Any, ...]]:
    return lambda i: (*params(i), limit)


def _range(column: str, rows: int) -> Callable[[int], tuple[Any, ...]]:
    def params(i: int) -> tuple[Any, ...]:
        low = _value(column, i, rows)
        return low, _upper(column, low)

    return params


def many_workload(statements: int, tables: int, rows: int) -> list[Query]:
    """``statements`` distinct statements, dealt round-robin over the tables so that each gets a mix."""
    per_table = [_table_shapes(k, tables, rows) for k in range(tables)]
    available = sum(len(shapes) for shapes in per_table)
    if statements > available:
        raise ValueError(f"{tables} tables give {available} distinct statements, fewer than {statements}")
    result: list[Query] = []
    depth = 0
    while len(result) < statements:
        result += [shapes[depth] for shapes in per_table if depth < len(shapes)][: statements - len(result)]
        depth += 1
    return result
