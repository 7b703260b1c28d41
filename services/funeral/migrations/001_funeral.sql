-- Pushed funeral and burial resources, one row per partner record.
CREATE TABLE funeral_records (
    partner_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    record_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    revision BIGINT NOT NULL,
    body_hash TEXT NOT NULL,
    data TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT '',
    ref_at BIGINT NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    stored_at BIGINT NOT NULL,
    change_seq BIGINT NOT NULL,
    PRIMARY KEY (partner_id, kind, record_id)
);
CREATE INDEX funeral_records_feed ON funeral_records (partner_id, kind, change_seq);
CREATE INDEX funeral_records_kind ON funeral_records (kind, change_seq);

-- The change log: one row per stored change, relayed to the bus (outbox).
CREATE TABLE funeral_changes (
    seq {{AUTO_ID}},
    partner_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    record_id TEXT NOT NULL,
    revision BIGINT NOT NULL,
    op TEXT NOT NULL,
    at BIGINT NOT NULL,
    published INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX funeral_changes_unpublished ON funeral_changes (published, seq);

-- Answers to requests carrying an Idempotency-Key.
CREATE TABLE funeral_idempotency (
    partner_id TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status INTEGER NOT NULL,
    etag TEXT NOT NULL,
    body TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (partner_id, idem_key)
);

-- What the bureau publishes: intermediaries, their staff, the red/black list.
CREATE TABLE funeral_bureau (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    parent_id TEXT NOT NULL DEFAULT '',
    data TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX funeral_bureau_parent ON funeral_bureau (kind, parent_id);
