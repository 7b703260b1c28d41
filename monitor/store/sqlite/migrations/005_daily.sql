-- Daily rollup per partner flow (days of 24 h from the Unix epoch, i.e. UTC),
-- kept on append beside the hourly one: a coarse aggregate over many days
-- (the 30-day quality report) reads one row per day instead of 24. Filled
-- from the hourly rollup for the days already stored.
CREATE TABLE monitor_daily (
    day_ms         BIGINT NOT NULL,
    partner        TEXT   NOT NULL,
    flow           TEXT   NOT NULL,
    events         BIGINT NOT NULL,
    errors         BIGINT NOT NULL,
    bytes          BIGINT NOT NULL,
    records        BIGINT NOT NULL,
    records_failed BIGINT NOT NULL,
    format_errors  BIGINT NOT NULL,
    s00 BIGINT NOT NULL, s01 BIGINT NOT NULL, s02 BIGINT NOT NULL, s03 BIGINT NOT NULL,
    s04 BIGINT NOT NULL, s05 BIGINT NOT NULL, s06 BIGINT NOT NULL, s07 BIGINT NOT NULL,
    s08 BIGINT NOT NULL, s09 BIGINT NOT NULL, s10 BIGINT NOT NULL, s11 BIGINT NOT NULL,
    PRIMARY KEY (day_ms, partner, flow)
) WITHOUT ROWID;
INSERT INTO monitor_daily (day_ms, partner, flow, events, errors, bytes, records, records_failed, format_errors,
    s00, s01, s02, s03, s04, s05, s06, s07, s08, s09, s10, s11)
SELECT hour_ms - (hour_ms % 86400000), partner, flow, sum(events), sum(errors), sum(bytes), sum(records),
    sum(records_failed), sum(format_errors), sum(s00), sum(s01), sum(s02), sum(s03), sum(s04), sum(s05),
    sum(s06), sum(s07), sum(s08), sum(s09), sum(s10), sum(s11)
FROM monitor_hourly
GROUP BY hour_ms - (hour_ms % 86400000), partner, flow;
