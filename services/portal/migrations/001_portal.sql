-- Cursors of the fetches from the portal (applications, cases) and other
-- small marks (expectations registered).
CREATE TABLE portal_marks (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Applications fetched from the job library. person_key is the HMAC-SM3
-- blind index of the ID number, person_sealed the SM4-GCM sealed number.
-- stage is the last node queued ('' before 预审), result/reason its result.
CREATE TABLE portal_applications (
    application_id  TEXT PRIMARY KEY,
    item_code       TEXT NOT NULL,
    channel         TEXT NOT NULL,
    terminal_id     TEXT NOT NULL DEFAULT '',
    division        TEXT NOT NULL,
    person_key      TEXT NOT NULL,
    person_sealed   TEXT NOT NULL,
    month           TEXT NOT NULL,
    submitted_at    BIGINT NOT NULL,
    received_at     BIGINT NOT NULL,
    stage           TEXT NOT NULL,
    result          TEXT NOT NULL DEFAULT '',
    reason          TEXT NOT NULL DEFAULT '',
    certificate_ref TEXT NOT NULL DEFAULT '',
    closed          INTEGER NOT NULL DEFAULT 0,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX portal_applications_person ON portal_applications (person_key, item_code);

-- Records refused (from the portal's pages or the business system's
-- files), with where they were and why; never applied.
CREATE TABLE portal_refused (
    id     {{AUTO_ID}},
    source TEXT NOT NULL,
    ref    TEXT NOT NULL,
    line   BIGINT NOT NULL DEFAULT 0,
    reason TEXT NOT NULL,
    at     BIGINT NOT NULL
);

-- Outbox of every send to the portal: kind node|push|confirm|payout; okey
-- orders the rows of one application (nodes); ref is the item's key at the
-- portal. state: pending, sending (a call is under way, or was when the hub
-- stopped), indoubt, delivered, failed.
CREATE TABLE portal_outbox (
    id           {{AUTO_ID}},
    kind         TEXT NOT NULL,
    okey         TEXT NOT NULL,
    ref          TEXT NOT NULL,
    body         {{BYTES}} NOT NULL,
    state        TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    delivered_at BIGINT NOT NULL DEFAULT 0,
    error        TEXT NOT NULL DEFAULT '',
    UNIQUE (kind, ref)
);
CREATE INDEX portal_outbox_state ON portal_outbox (kind, state, next_at);
CREATE INDEX portal_outbox_key ON portal_outbox (kind, okey, id);

-- The business system's register of eligible persons per item (免申即享
-- and the items the hub answers from a register). pushed_batch is the push
-- batch that carried the person ('' not yet pushed).
CREATE TABLE portal_eligible (
    item_code     TEXT NOT NULL,
    person_key    TEXT NOT NULL,
    person_sealed TEXT NOT NULL,
    name_sealed   TEXT NOT NULL,
    person_ref    TEXT NOT NULL,
    division      TEXT NOT NULL,
    status        TEXT NOT NULL,
    attrs         TEXT NOT NULL,
    month         TEXT NOT NULL,
    pushed_batch  TEXT NOT NULL DEFAULT '',
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (item_code, person_key)
);
CREATE INDEX portal_eligible_unpushed ON portal_eligible (item_code, pushed_batch);

-- 免申即享 cases handed back, the department's decision and the payout.
-- payout_state: '' looking for the payment (payout_next is the next
-- allowance month to look at), queued, none (no payment found).
CREATE TABLE portal_cases (
    case_id       TEXT PRIMARY KEY,
    item_code     TEXT NOT NULL,
    person_key    TEXT NOT NULL,
    person_sealed TEXT NOT NULL,
    division      TEXT NOT NULL,
    month         TEXT NOT NULL,
    received_at   BIGINT NOT NULL,
    decision      TEXT NOT NULL,
    reason        TEXT NOT NULL DEFAULT '',
    auto          INTEGER NOT NULL DEFAULT 0,
    decided_at    BIGINT NOT NULL DEFAULT 0,
    confirmed_at  BIGINT NOT NULL DEFAULT 0,
    payout_state  TEXT NOT NULL DEFAULT '',
    payout_next   TEXT NOT NULL DEFAULT '',
    paid_month    TEXT NOT NULL DEFAULT '',
    paid_fen      BIGINT NOT NULL DEFAULT 0,
    payout_note   TEXT NOT NULL DEFAULT ''
);
CREATE INDEX portal_cases_person ON portal_cases (person_key, item_code);
CREATE INDEX portal_cases_payout ON portal_cases (decision, confirmed_at, payout_state);

-- Files taken from the inbox, by name and SM3 digest.
CREATE TABLE portal_inbox (
    name     TEXT NOT NULL,
    digest   TEXT NOT NULL,
    records  BIGINT NOT NULL,
    refused  BIGINT NOT NULL,
    taken_at BIGINT NOT NULL,
    PRIMARY KEY (name, digest)
);
