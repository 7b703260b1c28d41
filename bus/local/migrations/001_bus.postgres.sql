-- See 001_bus.sqlite.sql for the meaning of each table.
CREATE TABLE bus_messages (
    id           BIGINT PRIMARY KEY,
    topic        TEXT   NOT NULL,
    msg_key      TEXT   NOT NULL,
    idem_key     TEXT   NOT NULL,
    headers      BYTEA,
    body         BYTEA,
    published_at BIGINT NOT NULL
);

CREATE TABLE bus_subscriptions (
    id         BIGINT PRIMARY KEY,
    topic      TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (topic, name)
);

CREATE TABLE bus_pending (
    msg_id     BIGINT  NOT NULL,
    sub_id     BIGINT  NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    not_before BIGINT  NOT NULL DEFAULT 0,
    cause      TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (msg_id, sub_id)
);

CREATE TABLE bus_sequence (
    id      INTEGER PRIMARY KEY,
    next_id BIGINT  NOT NULL
);
INSERT INTO bus_sequence (id, next_id) VALUES (1, 1);
