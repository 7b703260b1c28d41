-- Exchange events of the monitor (its own SQLite file, monitor.sqlite_path).
CREATE TABLE monitor_events (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ms          BIGINT  NOT NULL,
    event_id       TEXT    NOT NULL UNIQUE,
    partner        TEXT    NOT NULL,
    flow           TEXT    NOT NULL,
    direction      TEXT    NOT NULL,
    channel        TEXT    NOT NULL,
    type           TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    exchange_id    TEXT    NOT NULL,
    parent_ids     TEXT    NOT NULL,
    batch_id       TEXT    NOT NULL,
    stage          TEXT    NOT NULL,
    business_key   TEXT    NOT NULL,
    partner_ref    TEXT    NOT NULL,
    file_name      TEXT    NOT NULL,
    digest         TEXT    NOT NULL,
    bytes          BIGINT  NOT NULL,
    records        BIGINT  NOT NULL,
    records_failed BIGINT  NOT NULL,
    amount_fen     BIGINT  NOT NULL,
    duration_us    BIGINT  NOT NULL,
    attempt        INTEGER NOT NULL,
    error_class    TEXT    NOT NULL,
    error_code     TEXT    NOT NULL,
    error_message  TEXT    NOT NULL,
    component      TEXT    NOT NULL,
    node           TEXT    NOT NULL,
    attrs          TEXT    NOT NULL
);
CREATE INDEX monitor_events_ts ON monitor_events (ts_ms);
CREATE INDEX monitor_events_flow ON monitor_events (partner, flow, ts_ms);
CREATE INDEX monitor_events_exchange ON monitor_events (exchange_id);
CREATE INDEX monitor_events_batch ON monitor_events (batch_id, stage) WHERE batch_id <> '';
CREATE INDEX monitor_events_file ON monitor_events (file_name) WHERE file_name <> '';
CREATE INDEX monitor_events_ref ON monitor_events (partner_ref) WHERE partner_ref <> '';
CREATE INDEX monitor_events_key ON monitor_events (business_key) WHERE business_key <> '';
CREATE INDEX monitor_events_dead ON monitor_events (type, ts_ms) WHERE type IN ('dead_lettered', 'replayed', 'dropped', 'failed', 'rejected');

-- Lineage: exchange child came from exchange parent.
CREATE TABLE monitor_lineage (
    parent TEXT NOT NULL,
    child  TEXT NOT NULL,
    PRIMARY KEY (parent, child)
) WITHOUT ROWID;

-- Rollup kept on append: newest event and newest ok event per partner flow.
CREATE TABLE monitor_flow_last (
    partner     TEXT   NOT NULL,
    flow        TEXT   NOT NULL,
    last_ms     BIGINT NOT NULL,
    last_ok_ms  BIGINT NOT NULL,
    PRIMARY KEY (partner, flow)
) WITHOUT ROWID;
