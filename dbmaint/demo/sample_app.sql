-- The sample application of `dbmaint demo`: a small web shop, laid out like a pg_dump (tables, data,
-- then keys and indexes). Its flaws are deliberate; each is marked "FLAW" and is there for dbmaint to
-- find. Random data comes from a fixed seed, so every demo loads the same shop.

SELECT pg_catalog.setseed(0.42);

CREATE EXTENSION IF NOT EXISTS pg_stat_statements;  -- slow-query capture reads it
CREATE EXTENSION IF NOT EXISTS pgstattuple;         -- exact btree bloat for the reindex job

-- The index advisor proves each recommendation on the planner with hypothetical indexes (hypopg, the
-- package postgresql-15-hypopg). It is not part of the server: without it the demo still runs, and the
-- advisor says that its recommendations are unverified heuristics.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_available_extensions WHERE name = 'hypopg') THEN
        CREATE EXTENSION IF NOT EXISTS hypopg;
    ELSE
        RAISE NOTICE 'hypopg is not installed: the index advisor falls back to unverified heuristics';
    END IF;
    -- Real predicate values and selectivity for the advisor, when the demo server preloads it.
    IF EXISTS (SELECT FROM pg_catalog.pg_available_extensions WHERE name = 'pg_qualstats')
       AND pg_catalog.current_setting('shared_preload_libraries') LIKE '%pg_qualstats%' THEN
        CREATE EXTENSION IF NOT EXISTS pg_qualstats;
    END IF;
END
$$;

CREATE TABLE customers (
    id          bigint GENERATED ALWAYS AS IDENTITY,
    email       text NOT NULL,
    full_name   text NOT NULL,
    country     text NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE products (
    id          bigint GENERATED ALWAYS AS IDENTITY,
    sku         text NOT NULL,
    name        text NOT NULL,
    category    text NOT NULL,
    price_cents integer NOT NULL,
    stock       integer NOT NULL
);

CREATE TABLE orders (
    id               bigint GENERATED ALWAYS AS IDENTITY,
    customer_id      bigint NOT NULL,
    status           text NOT NULL,  -- paid -> shipped, or cancelled / refunded
    total_cents      integer NOT NULL,
    shipping_country text NOT NULL,  -- FLAW: filtered on by the sales report, not indexed
    created_at       timestamptz NOT NULL,
    shipped_at       timestamptz
);

CREATE TABLE order_items (
    order_id         bigint NOT NULL,
    line_no          integer NOT NULL,
    product_id       bigint NOT NULL,  -- FLAW: a foreign key without an index
    quantity         integer NOT NULL,
    unit_price_cents integer NOT NULL
);

-- FLAW: an append-only log without a primary key; old rows are purged in bulk.
CREATE TABLE events (
    occurred_at timestamptz NOT NULL,
    customer_id bigint,  -- NULL for anonymous visitors
    kind        text NOT NULL,
    path        text NOT NULL
);

-- Web sessions, keyed by their random token; expired ones are purged in bulk.
CREATE TABLE sessions (
    token        text NOT NULL,
    customer_id  bigint,
    created_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL
);

INSERT INTO customers (email, full_name, country, created_at)
SELECT pg_catalog.format('customer%s@example.com', g),
       (ARRAY['Ada', 'Grace', 'Linus', 'Barbara', 'Edsger', 'Margaret', 'Ken', 'Frances'])[1 + g % 8] || ' ' ||
       (ARRAY['Lovelace', 'Hopper', 'Torvalds', 'Liskov', 'Dijkstra', 'Hamilton', 'Thompson', 'Allen'])[1 + g / 8 % 8],
       (ARRAY['DE', 'FR', 'NL', 'US', 'GB', 'SE', 'ES', 'IT', 'PL', 'JP'])[1 + floor(random() * 10)::int],
       now() - random() * interval '3 years'
  FROM generate_series(1, 20000) AS g;

INSERT INTO products (sku, name, category, price_cents, stock)
SELECT pg_catalog.format('SKU-%s', lpad(g::text, 6, '0')),
       pg_catalog.format('Product %s', g),
       (ARRAY['books', 'garden', 'kitchen', 'toys', 'tools', 'music', 'sports', 'office'])[1 + g % 8],
       199 + floor(random() * 20000)::int,
       floor(random() * 500)::int
  FROM generate_series(1, 2000) AS g;

INSERT INTO orders (customer_id, status, total_cents, shipping_country, created_at, shipped_at)
SELECT customer_id, status, total_cents, shipping_country, created_at,
       CASE WHEN status = 'shipped' THEN created_at + interval '2 days' END
  FROM (SELECT 1 + floor(random() * 20000)::bigint AS customer_id,
               CASE WHEN g % 20 < 6 THEN 'paid' WHEN g % 20 < 17 THEN 'shipped'
                    WHEN g % 20 < 19 THEN 'cancelled' ELSE 'refunded' END AS status,
               500 + floor(random() * 50000)::int AS total_cents,
               (ARRAY['DE', 'FR', 'NL', 'US', 'GB', 'SE', 'ES', 'IT', 'PL', 'JP'])[1 + floor(random() * 10)::int]
                   AS shipping_country,
               now() - random() * interval '2 years' AS created_at
          FROM generate_series(1, 100000) AS g) AS o;

-- One to three lines per order: 200,000 rows.
INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price_cents)
SELECT o.id, l, 1 + floor(random() * 2000)::bigint, 1 + floor(random() * 4)::int, 199 + floor(random() * 20000)::int
  FROM orders AS o, generate_series(1, 1 + (o.id % 3)::int) AS l;

-- 120 days of clicks.
INSERT INTO events (occurred_at, customer_id, kind, path)
SELECT now() - random() * interval '120 days',
       CASE WHEN g % 5 <> 0 THEN 1 + floor(random() * 20000)::bigint END,
       (ARRAY['page_view', 'page_view', 'page_view', 'search', 'add_to_cart', 'checkout'])[1 + g % 6],
       pg_catalog.format('/products/%s', 1 + g % 2000)
  FROM generate_series(1, 100000) AS g;

-- FLAW (waiting to happen): the expiry job has been broken for most of a year, so almost every session
-- here is long expired; when it finally runs, ~90% of the rows go at once, scattered over the index.
INSERT INTO sessions (token, customer_id, created_at, last_seen_at)
SELECT md5('session-' || g), CASE WHEN g % 3 <> 0 THEN 1 + floor(random() * 20000)::bigint END,
       seen - random() * interval '30 days', seen
  FROM (SELECT g, now() - random() * interval '330 days' AS seen FROM generate_series(1, 200000) AS g) AS s;

ALTER TABLE customers ADD PRIMARY KEY (id);
ALTER TABLE customers ADD UNIQUE (email);
ALTER TABLE products ADD PRIMARY KEY (id);
ALTER TABLE products ADD UNIQUE (sku);
ALTER TABLE orders ADD PRIMARY KEY (id);
ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers (id);
CREATE INDEX orders_customer_id_idx ON orders (customer_id);
CREATE INDEX orders_created_at_idx ON orders (created_at);
ALTER TABLE order_items ADD PRIMARY KEY (order_id, line_no);
ALTER TABLE order_items ADD FOREIGN KEY (order_id) REFERENCES orders (id);
ALTER TABLE order_items ADD FOREIGN KEY (product_id) REFERENCES products (id);  -- FLAW: no index behind it
CREATE INDEX events_occurred_at_idx ON events (occurred_at);
ALTER TABLE sessions ADD PRIMARY KEY (token);
CREATE INDEX sessions_customer_id_idx ON sessions (customer_id);
