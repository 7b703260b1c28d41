-- Funeral partners as every replica serves them: the non-secret fields
-- (imported from the registry files or written by `mzhub partner add`),
-- the enable/disable state and the signing keys with their secrets sealed
-- under the hub's field keys (SM4-GCM). Replicas poll funeral_partner_state
-- and reload when its version moves.
CREATE TABLE funeral_partners (
    id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL
);

-- One row per key id ever issued or imported; a revoked key keeps its row
-- (revoked_at > 0) so that an import never brings it back. secret is ''
-- for a key whose secret the key provider holds (partner/<key id>).
CREATE TABLE funeral_partner_keys (
    key_id TEXT PRIMARY KEY,
    partner_id TEXT NOT NULL,
    secret TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL,
    revoked_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX funeral_partner_keys_partner ON funeral_partner_keys (partner_id);

-- One row: bumped in the same transaction as every change.
CREATE TABLE funeral_partner_state (
    id INTEGER PRIMARY KEY,
    version BIGINT NOT NULL,
    changed_at BIGINT NOT NULL
);
INSERT INTO funeral_partner_state (id, version, changed_at) VALUES (1, 0, 0);
