-- Delivery ledger: what each sink of each route received, by idempotency key.
-- state is 'pending' while a delivery is under way and 'done' after it.
CREATE TABLE routes_deliveries (
    route TEXT NOT NULL,
    sink TEXT NOT NULL,
    idem TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (route, sink, idem)
);

-- Dedupe ledger: the first message (idempotency key) that claimed a dedupe key.
CREATE TABLE routes_dedupe (
    route TEXT NOT NULL,
    step TEXT NOT NULL,
    dkey TEXT NOT NULL,
    idem TEXT NOT NULL,
    seen_at BIGINT NOT NULL,
    PRIMARY KEY (route, step, dkey)
);

-- Aggregate parts waiting for their group to complete.
CREATE TABLE routes_aggregate_parts (
    id {{AUTO_ID}},
    route TEXT NOT NULL,
    step TEXT NOT NULL,
    gkey TEXT NOT NULL,
    idem TEXT NOT NULL,
    body {{BYTES}} NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (route, step, gkey, idem)
);

-- Completed aggregates not yet published back on the route's topic.
CREATE TABLE routes_aggregate_outbox (
    id {{AUTO_ID}},
    route TEXT NOT NULL,
    msg TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Dead letters: the original message, the error, the attempts, the endpoint.
-- state: dead, replay (requested), replayed, dropped.
CREATE TABLE routes_dead_letters (
    id {{AUTO_ID}},
    route TEXT NOT NULL,
    sink TEXT NOT NULL,
    step TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    idem TEXT NOT NULL,
    msg TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    state TEXT NOT NULL,
    resolved_at BIGINT,
    resolved_by TEXT
);
CREATE INDEX routes_dead_letters_state ON routes_dead_letters (state, route);
