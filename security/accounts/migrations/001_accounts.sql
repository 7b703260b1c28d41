-- Console accounts and sessions. One role per account keeps the three
-- administrative duties (operator, security admin, auditor) apart.
CREATE TABLE console_users (
    id {{AUTO_ID}},
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    password_changed_ms BIGINT NOT NULL,
    must_change INTEGER NOT NULL,
    failed_count INTEGER NOT NULL,
    locked_until_ms BIGINT NOT NULL,
    disabled INTEGER NOT NULL,
    created_ms BIGINT NOT NULL,
    last_login_ms BIGINT NOT NULL
);
-- Sessions are stored by the SM3 of their token; the token is only in the cookie.
CREATE TABLE console_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    csrf TEXT NOT NULL,
    source_ip TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL
);
CREATE INDEX console_sessions_user ON console_sessions (user_id);
