-- Persistent, de-duplicated monitor alerts (state database).
CREATE TABLE monitor_alerts (
    id          {{AUTO_ID}},
    fingerprint TEXT   NOT NULL,
    rule        TEXT   NOT NULL,
    severity    TEXT   NOT NULL,
    partner     TEXT   NOT NULL,
    flow        TEXT   NOT NULL,
    summary     TEXT   NOT NULL,
    state       TEXT   NOT NULL,
    first_ms    BIGINT NOT NULL,
    last_ms     BIGINT NOT NULL,
    count       BIGINT NOT NULL,
    acked_by    TEXT   NOT NULL DEFAULT '',
    acked_ms    BIGINT NOT NULL DEFAULT 0,
    resolved_by TEXT   NOT NULL DEFAULT '',
    resolved_ms BIGINT NOT NULL DEFAULT 0,
    note        TEXT   NOT NULL DEFAULT ''
);
-- At most one live (not resolved) alert per fingerprint: raising again counts.
CREATE UNIQUE INDEX monitor_alerts_live ON monitor_alerts (fingerprint) WHERE state <> 'resolved';
CREATE INDEX monitor_alerts_state ON monitor_alerts (state, last_ms);
