-- Nonces of signed partner requests, remembered for the signature window so a
-- replay is refused on every replica.
CREATE TABLE partner_nonces (
    key_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    expires_ms BIGINT NOT NULL,
    PRIMARY KEY (key_id, nonce)
);
CREATE INDEX partner_nonces_expiry ON partner_nonces (expires_ms);
