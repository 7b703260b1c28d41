-- The append-only audit chain. Each row's mac is HMAC-SM3 over its fields and
-- the previous row's mac; audit_state holds the MACed head (last seq and mac)
-- and base (where the chain starts after retention pruning).
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    source_ip TEXT NOT NULL,
    action TEXT NOT NULL,
    object TEXT NOT NULL,
    outcome TEXT NOT NULL,
    request_id TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_mac TEXT NOT NULL,
    mac TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at_ms);
CREATE INDEX audit_log_actor ON audit_log (actor, at_ms);
CREATE TABLE audit_state (
    id INTEGER PRIMARY KEY,
    head_seq BIGINT NOT NULL,
    head_mac TEXT NOT NULL,
    head_tag TEXT NOT NULL,
    base_seq BIGINT NOT NULL,
    base_mac TEXT NOT NULL,
    base_tag TEXT NOT NULL
);
INSERT INTO audit_state (id, head_seq, head_mac, head_tag, base_seq, base_mac, base_tag) VALUES (1, 0, '', '', 0, '', '');
