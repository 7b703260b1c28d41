-- One row per lease: which node holds it and until when (Unix ms of that
-- node's clock).
CREATE TABLE leases (
    name       TEXT NOT NULL PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
