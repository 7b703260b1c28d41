-- The hourly rollup also feeds the data-quality score: record counts,
-- format errors, and events slower than each of monitor.SlowBounds
-- (s00 = 1 s ... s11 = 1 h). Hours already rolled up are filled from the
-- stored events: per partner flow through the (partner, flow, ts_ms) index,
-- then the all-flows rows ('*') through the time index.
ALTER TABLE monitor_hourly ADD COLUMN records BIGINT NOT NULL DEFAULT 0;
ALTER TABLE monitor_hourly ADD COLUMN records_failed BIGINT NOT NULL DEFAULT 0;
ALTER TABLE monitor_hourly ADD COLUMN format_errors BIGINT NOT NULL DEFAULT 0;
ALTER TABLE monitor_hourly ADD COLUMN s00 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE monitor_hourly ADD COLUMN s01 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE monitor_hourly ADD COLUMN s02 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE monitor_hourly ADD COLUMN s03 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE monitor_hourly ADD COLUMN s04 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE monitor_hourly ADD COLUMN s05 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE monitor_hourly ADD COLUMN s06 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE monitor_hourly ADD COLUMN s07 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE monitor_hourly ADD COLUMN s08 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE monitor_hourly ADD COLUMN s09 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE monitor_hourly ADD COLUMN s10 BIGINT NOT NULL DEFAULT 0;
ALTER TABLE monitor_hourly ADD COLUMN s11 BIGINT NOT NULL DEFAULT 0;
UPDATE monitor_hourly SET (records, records_failed, format_errors, s00, s01, s02, s03, s04, s05, s06, s07, s08, s09, s10, s11) = (SELECT
    coalesce(sum(e.records), 0),
    coalesce(sum(e.records_failed), 0),
    coalesce(sum((e.type IN ('validated', 'rejected') AND e.status = 'error') OR e.error_class = 'format'), 0),
    coalesce(sum(e.duration_us > 1000000), 0),
    coalesce(sum(e.duration_us > 2000000), 0),
    coalesce(sum(e.duration_us > 5000000), 0),
    coalesce(sum(e.duration_us > 10000000), 0),
    coalesce(sum(e.duration_us > 15000000), 0),
    coalesce(sum(e.duration_us > 30000000), 0),
    coalesce(sum(e.duration_us > 60000000), 0),
    coalesce(sum(e.duration_us > 120000000), 0),
    coalesce(sum(e.duration_us > 300000000), 0),
    coalesce(sum(e.duration_us > 600000000), 0),
    coalesce(sum(e.duration_us > 1800000000), 0),
    coalesce(sum(e.duration_us > 3600000000), 0)
    FROM monitor_events e
    WHERE e.ts_ms >= monitor_hourly.hour_ms AND e.ts_ms < monitor_hourly.hour_ms + 3600000
      AND e.partner = monitor_hourly.partner AND e.flow = monitor_hourly.flow)
WHERE partner <> '*';
UPDATE monitor_hourly SET (records, records_failed, format_errors, s00, s01, s02, s03, s04, s05, s06, s07, s08, s09, s10, s11) = (SELECT
    coalesce(sum(e.records), 0),
    coalesce(sum(e.records_failed), 0),
    coalesce(sum((e.type IN ('validated', 'rejected') AND e.status = 'error') OR e.error_class = 'format'), 0),
    coalesce(sum(e.duration_us > 1000000), 0),
    coalesce(sum(e.duration_us > 2000000), 0),
    coalesce(sum(e.duration_us > 5000000), 0),
    coalesce(sum(e.duration_us > 10000000), 0),
    coalesce(sum(e.duration_us > 15000000), 0),
    coalesce(sum(e.duration_us > 30000000), 0),
    coalesce(sum(e.duration_us > 60000000), 0),
    coalesce(sum(e.duration_us > 120000000), 0),
    coalesce(sum(e.duration_us > 300000000), 0),
    coalesce(sum(e.duration_us > 600000000), 0),
    coalesce(sum(e.duration_us > 1800000000), 0),
    coalesce(sum(e.duration_us > 3600000000), 0)
    FROM monitor_events e
    WHERE e.ts_ms >= monitor_hourly.hour_ms AND e.ts_ms < monitor_hourly.hour_ms + 3600000)
WHERE partner = '*';
