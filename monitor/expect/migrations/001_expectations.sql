-- Expected exchanges (state database): recurring instances and one-offs.
CREATE TABLE monitor_expectations (
    id           {{AUTO_ID}},
    name         TEXT   NOT NULL,
    partner      TEXT   NOT NULL,
    flow         TEXT   NOT NULL,
    type         TEXT   NOT NULL,
    batch_id     TEXT   NOT NULL,
    file_pattern TEXT   NOT NULL,
    from_ms      BIGINT NOT NULL,
    due_ms       BIGINT NOT NULL,
    state        TEXT   NOT NULL,
    met_ms       BIGINT NOT NULL DEFAULT 0,
    met_event_id TEXT   NOT NULL DEFAULT '',
    UNIQUE (name, due_ms)
);
CREATE INDEX monitor_expectations_state ON monitor_expectations (state, due_ms);
CREATE INDEX monitor_expectations_due ON monitor_expectations (due_ms);
