-- Type-led index: open dead letters and reconciliation searches filter on
-- one type (the partial index of 001 cannot serve "type = ?").
DROP INDEX monitor_events_dead;
CREATE INDEX monitor_events_type ON monitor_events (type, ts_ms);

-- Rollup kept on append: one row per batch stage for the pipeline view.
CREATE TABLE monitor_batch_stages (
    batch_id       TEXT   NOT NULL,
    stage          TEXT   NOT NULL,
    partner        TEXT   NOT NULL,
    flow           TEXT   NOT NULL,
    first_ms       BIGINT NOT NULL,
    last_ms        BIGINT NOT NULL,
    last_type      TEXT   NOT NULL,
    last_status    TEXT   NOT NULL,
    events         BIGINT NOT NULL,
    errors         BIGINT NOT NULL,
    records_in     BIGINT NOT NULL,
    records_out    BIGINT NOT NULL,
    records_failed BIGINT NOT NULL,
    PRIMARY KEY (batch_id, stage)
) WITHOUT ROWID;
CREATE INDEX monitor_batch_stages_last ON monitor_batch_stages (last_ms);

INSERT INTO monitor_batch_stages
SELECT batch_id, stage, partner, flow, min(ts_ms), max(ts_ms), type, status, count(*), sum(status = 'error'),
    sum(CASE WHEN type IN ('received', 'fetched', 'downloaded', 'claimed') THEN records ELSE 0 END),
    sum(CASE WHEN type IN ('sent', 'uploaded', 'transformed', 'validated', 'reconciled') THEN records ELSE 0 END),
    sum(records_failed)
FROM monitor_events WHERE batch_id <> '' GROUP BY batch_id, stage;
