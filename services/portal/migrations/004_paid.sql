-- Payments of items paid outside the allowance disbursement (payout
-- paid_file, e.g. 重度残疾人护理补贴), from the business system's
-- paid-<ITEM>-<YYYY-MM>.csv: one row per item, person and month; paid is 1
-- for a payment made, 0 for one that failed.
CREATE TABLE portal_paid (
    item_code  TEXT NOT NULL,
    person_key TEXT NOT NULL,
    month      TEXT NOT NULL,
    amount_fen BIGINT NOT NULL,
    paid       INTEGER NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    file       TEXT NOT NULL,
    PRIMARY KEY (item_code, person_key, month)
);

-- The months whose paid file arrived, per item (a month without its file is
-- not settled yet).
CREATE TABLE portal_paid_months (
    item_code TEXT NOT NULL,
    month     TEXT NOT NULL,
    file      TEXT NOT NULL,
    taken_at  BIGINT NOT NULL,
    PRIMARY KEY (item_code, month)
);
