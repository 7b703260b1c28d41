-- Data-sea records applied, once each by the platform's record id.
CREATE TABLE allow_records (
    record_id   TEXT NOT NULL PRIMARY KEY,
    kind        TEXT NOT NULL,
    person      TEXT NOT NULL,
    id_masked   TEXT NOT NULL,
    id_sealed   TEXT NOT NULL,
    event_date  TEXT NOT NULL,
    district    TEXT NOT NULL,
    region      TEXT NOT NULL,
    source      TEXT NOT NULL,
    state       TEXT NOT NULL,
    received_ms BIGINT NOT NULL
);
CREATE INDEX allow_records_person ON allow_records (person);

-- Persons whose payment the data sea's records stopped.
CREATE TABLE allow_persons (
    person     TEXT NOT NULL PRIMARY KEY,
    id_masked  TEXT NOT NULL,
    status     TEXT NOT NULL,
    stop_month TEXT NOT NULL DEFAULT '',
    record_id  TEXT NOT NULL DEFAULT '',
    updated_ms BIGINT NOT NULL
);

-- 迁入: pending entries for district review.
CREATE TABLE allow_reviews (
    record_id  TEXT NOT NULL PRIMARY KEY,
    person     TEXT NOT NULL,
    id_masked  TEXT NOT NULL,
    district   TEXT NOT NULL,
    region     TEXT NOT NULL,
    event_date TEXT NOT NULL,
    state      TEXT NOT NULL,
    decided_by TEXT NOT NULL DEFAULT '',
    decided_ms BIGINT NOT NULL DEFAULT 0
);

-- Months withheld from a person by a stop (the base of 补发 when the stop was wrong).
CREATE TABLE allow_withheld (
    person     TEXT NOT NULL,
    month      TEXT NOT NULL,
    amount_fen BIGINT NOT NULL,
    reason     TEXT NOT NULL,
    record_id  TEXT NOT NULL,
    PRIMARY KEY (person, month)
);

-- Payments made after death: to be clawed back.
CREATE TABLE allow_clawbacks (
    person     TEXT NOT NULL,
    month      TEXT NOT NULL,
    id_masked  TEXT NOT NULL,
    amount_fen BIGINT NOT NULL,
    record_id  TEXT NOT NULL,
    found_in   TEXT NOT NULL,
    state      TEXT NOT NULL,
    PRIMARY KEY (person, month)
);

-- 补发: back-payments of months withheld wrongly, listed in the next list.
CREATE TABLE allow_backpays (
    person     TEXT NOT NULL,
    month      TEXT NOT NULL,
    id_masked  TEXT NOT NULL,
    amount_fen BIGINT NOT NULL,
    state      TEXT NOT NULL,
    period     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (person, month)
);

-- Screening warnings, one per person and rule.
CREATE TABLE allow_warnings (
    person     TEXT NOT NULL,
    code       TEXT NOT NULL,
    id_masked  TEXT NOT NULL,
    detail     TEXT NOT NULL,
    found_in   TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (person, code)
);

-- Records that could not be applied, with the reason.
CREATE TABLE allow_quarantine (
    source     TEXT NOT NULL,
    item       TEXT NOT NULL,
    ref        TEXT NOT NULL,
    record_id  TEXT NOT NULL,
    reason     TEXT NOT NULL,
    raw        TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (source, item)
);
