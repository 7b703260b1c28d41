-- Monitor events of acknowledged exchanges, kept until the event store has
-- them (monitor.Writer.EmitDurable). node is the replica that spooled the
-- event or adopted it; token marks the recovery that took it last.
CREATE TABLE monitor_spool (
    event_id TEXT NOT NULL PRIMARY KEY,
    node     TEXT NOT NULL,
    token    TEXT NOT NULL DEFAULT '',
    at_ms    BIGINT NOT NULL,
    body     TEXT NOT NULL
);
CREATE INDEX monitor_spool_node ON monitor_spool (node);
CREATE INDEX monitor_spool_token ON monitor_spool (token);
