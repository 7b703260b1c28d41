-- Upload ledger: one row per logical outbound file of a partner.
CREATE TABLE sftp_uploads (
    partner     TEXT NOT NULL,
    name        TEXT NOT NULL,
    remote_path TEXT NOT NULL,
    digest      TEXT NOT NULL,
    bytes       BIGINT NOT NULL,
    state       TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (partner, name)
);

-- Claim ledger: an inbound file is processed once, keyed by what it is.
CREATE TABLE sftp_claims (
    partner     TEXT NOT NULL,
    path        TEXT NOT NULL,
    bytes       BIGINT NOT NULL,
    digest      TEXT NOT NULL,
    state       TEXT NOT NULL,
    node        TEXT NOT NULL,
    claimed_at  BIGINT NOT NULL,
    finished_at BIGINT NOT NULL DEFAULT 0,
    detail      TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (partner, path, bytes, digest)
);
