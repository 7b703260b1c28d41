-- One row per batch (a kind and a period): where the cycle stands.
CREATE TABLE disb_batches (
    id           {{AUTO_ID}},
    name         TEXT NOT NULL UNIQUE,
    kind         TEXT NOT NULL,
    period       TEXT NOT NULL,
    stage        TEXT NOT NULL,
    status       TEXT NOT NULL,
    letter_total BIGINT NOT NULL DEFAULT 0,
    system_total BIGINT NOT NULL DEFAULT 0,
    records      BIGINT NOT NULL DEFAULT 0,
    valid        BIGINT NOT NULL DEFAULT 0,
    file_date    TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    error        TEXT NOT NULL DEFAULT ''
);

-- Stage log: start and end of each stage of a batch.
CREATE TABLE disb_stages (
    batch_id    BIGINT NOT NULL,
    stage       TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT NOT NULL DEFAULT 0,
    detail      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (batch_id, stage)
);

-- Per-person state, compact: the person's data stays in the list file;
-- seq is the line of the list. status: 0 listed, 1 rejected, 2 sent,
-- 3 paid, 4 failed, 5 missing.
CREATE TABLE disb_payments (
    batch_id   BIGINT NOT NULL,
    seq        BIGINT NOT NULL,
    bank       INTEGER NOT NULL,
    division   INTEGER NOT NULL,
    amount_fen BIGINT NOT NULL,
    status     INTEGER NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    person_key BIGINT NOT NULL,
    PRIMARY KEY (batch_id, seq)
);

-- Validation findings: rejects and flags with reasons.
CREATE TABLE disb_issues (
    batch_id BIGINT NOT NULL,
    seq      BIGINT NOT NULL,
    code     TEXT NOT NULL,
    severity TEXT NOT NULL,
    detail   TEXT NOT NULL
);
CREATE INDEX disb_issues_batch ON disb_issues (batch_id, code);

-- District and city confirmations by named users.
CREATE TABLE disb_confirmations (
    batch_id  BIGINT NOT NULL,
    level     TEXT NOT NULL,
    user_name TEXT NOT NULL,
    at        BIGINT NOT NULL,
    PRIMARY KEY (batch_id, level)
);

-- Files sent and returns received.
CREATE TABLE disb_files (
    batch_id   BIGINT NOT NULL,
    bank       TEXT NOT NULL,
    direction  TEXT NOT NULL,
    name       TEXT NOT NULL,
    records    BIGINT NOT NULL,
    total_fen  BIGINT NOT NULL,
    digest     TEXT NOT NULL,
    state      TEXT NOT NULL,
    part_no    INTEGER NOT NULL DEFAULT 0,
    part_total INTEGER NOT NULL DEFAULT 0,
    detail     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (batch_id, bank, direction, name)
);

-- Malformed return records, with their line numbers (no raw content).
CREATE TABLE disb_quarantine (
    batch_id BIGINT NOT NULL,
    bank     TEXT NOT NULL,
    file     TEXT NOT NULL,
    line     BIGINT NOT NULL,
    problem  TEXT NOT NULL
);

-- Persons whose payment failed, carried into the next run of the kind.
CREATE TABLE disb_carry (
    kind        TEXT NOT NULL,
    person_key  BIGINT NOT NULL,
    from_period TEXT NOT NULL,
    reason      TEXT NOT NULL,
    PRIMARY KEY (kind, person_key)
);
