-- Account operations asked of the banks (核查, 开户, 激活, 挂失, 解挂失, 注销),
-- one row per request; ID number, name and account sealed, looked up by
-- blind index, shown masked.
CREATE TABLE acct_requests (
    ref            TEXT NOT NULL PRIMARY KEY,
    ext_id         TEXT NOT NULL,
    bank           TEXT NOT NULL,
    op             TEXT NOT NULL,
    person         TEXT NOT NULL,
    id_masked      TEXT NOT NULL,
    id_sealed      TEXT NOT NULL,
    name_sealed    TEXT NOT NULL,
    account_index  TEXT NOT NULL DEFAULT '',
    account_masked TEXT NOT NULL DEFAULT '',
    account_sealed TEXT NOT NULL DEFAULT '',
    division       TEXT NOT NULL DEFAULT '',
    status         TEXT NOT NULL,
    file           TEXT NOT NULL DEFAULT '',
    outcome        TEXT NOT NULL DEFAULT '',
    code           TEXT NOT NULL DEFAULT '',
    reason         TEXT NOT NULL DEFAULT '',
    created_ms     BIGINT NOT NULL,
    updated_ms     BIGINT NOT NULL
);
CREATE UNIQUE INDEX acct_requests_ext ON acct_requests (ext_id);
CREATE INDEX acct_requests_queue ON acct_requests (status, bank, op);
CREATE INDEX acct_requests_file ON acct_requests (file);
CREATE INDEX acct_requests_person ON acct_requests (person, bank);

-- Request files: filed (requests assigned, written), sent (uploaded),
-- answered (every result applied).
CREATE TABLE acct_files (
    name       TEXT NOT NULL PRIMARY KEY,
    bank       TEXT NOT NULL,
    op         TEXT NOT NULL,
    day        TEXT NOT NULL,
    records    BIGINT NOT NULL,
    status     TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);
CREATE INDEX acct_files_status ON acct_files (status, bank);

-- Result files applied, once each (by bank and name and digest).
CREATE TABLE acct_results (
    bank       TEXT NOT NULL,
    name       TEXT NOT NULL,
    digest     TEXT NOT NULL,
    records    BIGINT NOT NULL,
    failed     BIGINT NOT NULL,
    rejected   BIGINT NOT NULL,
    applied_ms BIGINT NOT NULL,
    PRIMARY KEY (bank, name, digest)
);

-- The state of each person's account at each bank, as the banks' results
-- left it: verified, opened, active, lost, frozen, closed, open_failed,
-- verify_failed.
CREATE TABLE acct_state (
    person         TEXT NOT NULL,
    bank           TEXT NOT NULL,
    id_masked      TEXT NOT NULL,
    account_index  TEXT NOT NULL DEFAULT '',
    account_masked TEXT NOT NULL DEFAULT '',
    account_sealed TEXT NOT NULL DEFAULT '',
    state          TEXT NOT NULL,
    reason         TEXT NOT NULL DEFAULT '',
    last_ref       TEXT NOT NULL,
    updated_ms     BIGINT NOT NULL,
    PRIMARY KEY (person, bank)
);
CREATE INDEX acct_state_state ON acct_state (state);
