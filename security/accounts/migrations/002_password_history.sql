-- Previous password hashes, so a changed password cannot reuse a recent one.
CREATE TABLE console_password_history (
    id {{AUTO_ID}},
    user_id BIGINT NOT NULL,
    password_hash TEXT NOT NULL,
    changed_ms BIGINT NOT NULL
);
CREATE INDEX console_password_history_user ON console_password_history (user_id, changed_ms);
