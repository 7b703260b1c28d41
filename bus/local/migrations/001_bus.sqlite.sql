-- Messages of every topic. A message is deleted once every subscription
-- that held it acknowledged it; a message published while its topic had no
-- subscription stays until one is created.
CREATE TABLE bus_messages (
    id           INTEGER PRIMARY KEY,
    topic        TEXT    NOT NULL,
    msg_key      TEXT    NOT NULL,
    idem_key     TEXT    NOT NULL,
    headers      BLOB,
    body         BLOB,
    published_at INTEGER NOT NULL
);

-- Durable subscriptions.
CREATE TABLE bus_subscriptions (
    id         INTEGER PRIMARY KEY,
    topic      TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (topic, name)
);

-- One row per (message, subscription) not yet acknowledged. attempts,
-- not_before and cause are written by nacks only (deliveries are counted in
-- memory between restarts).
CREATE TABLE bus_pending (
    msg_id     INTEGER NOT NULL,
    sub_id     INTEGER NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    not_before INTEGER NOT NULL DEFAULT 0,
    cause      TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (msg_id, sub_id)
) WITHOUT ROWID;

-- Ids below next_id may have been used: the writer reserves ids in blocks
-- and writes the end of its block here, so ids are never reused.
CREATE TABLE bus_sequence (
    id      INTEGER PRIMARY KEY,
    next_id INTEGER NOT NULL
);
INSERT INTO bus_sequence (id, next_id) VALUES (1, 1);
