-- Second factor: one TOTP (RFC 6238) secret per enrolled account, sealed
-- under the hub's field keys; last_step refuses a code used twice.
CREATE TABLE console_totp (
    user_id BIGINT PRIMARY KEY,
    secret TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    last_step BIGINT NOT NULL,
    enrolled_ms BIGINT NOT NULL
);
