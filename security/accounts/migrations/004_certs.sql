-- Cryptographic second factor: SM2 client certificates (or a USB key's
-- certificate) mapped to console accounts, by the SM3 fingerprint of the
-- certificate's DER. A login over the console's TLCP listener presents one.
CREATE TABLE console_certs (
    fingerprint TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    subject TEXT NOT NULL,
    not_after_ms BIGINT NOT NULL,
    added_ms BIGINT NOT NULL
);
CREATE INDEX console_certs_user ON console_certs (user_id);
