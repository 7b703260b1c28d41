-- mzhub monitor schema for ClickHouse. Portable between Debian's 18.16 and
-- current ClickHouse: no DateTime64, Map, TTL, CODEC, skip indexes or
-- LowCardinality; months are partitions, so retention drops whole months
-- (ALTER TABLE ... DROP PARTITION 202601). Statements are separated by a
-- line holding only ';' and run in the target database. Every aggregate
-- state column is cast explicitly: 18.16 skips a materialized view whose
-- SELECT types do not match the target table. A view's SELECT lists the
-- target's columns in the target's order: the store backfills a new target
-- from existing events with that SELECT. A view whose SELECT changes gets a
-- new name, and the old name goes to the store's legacy list, which drops
-- it on open. A rollup whose columns change is dropped with its view and
-- rebuilt from the events on open.
--
-- Every insert writes one part per table it reaches (the events and each
-- view's target), and each part is a directory of files: 4 (6 when
-- partitioned) plus 2 per column. Where the server's disk creates files
-- slowly, those files are the cost of an insert, so rollups keep few
-- columns: counters that merge alike share one sumForEach array, and
-- strings read together share one argMax.

CREATE TABLE IF NOT EXISTS monitor_events (
    event_date     Date,
    ts_ms          Int64,
    event_id       String,
    partner        String,
    flow           String,
    direction      String,
    channel        String,
    type           String,
    status         String,
    exchange_id    String,
    parent_ids     Array(String),
    batch_id       String,
    stage          String,
    business_key   String,
    partner_ref    String,
    file_name      String,
    digest         String,
    bytes          Int64,
    records        Int64,
    records_failed Int64,
    amount_fen     Int64,
    duration_us    Int64,
    attempt        Int32,
    error_class    String,
    error_code     String,
    error_message  String,
    component      String,
    node           String,
    attr_keys      Array(String),
    attr_values    Array(String)
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(event_date)
ORDER BY (partner, flow, ts_ms, event_id)
-- Marks every 1024 rows instead of 8192: a search by key or a short time
-- window reads one small granule per partner flow instead of a large one
-- (4-8x fewer rows on the console's pages at 10 M events).
SETTINGS index_granularity = 1024
;
-- Lineage links, parent first, for "what came out of this file".
CREATE TABLE IF NOT EXISTS monitor_lineage (
    event_date Date,
    parent     String,
    child      String
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(event_date)
ORDER BY (parent, child)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS monitor_lineage_mv TO monitor_lineage AS
SELECT event_date, parent, exchange_id AS child
FROM monitor_events
ARRAY JOIN parent_ids AS parent
WHERE exchange_id != ''
;
-- Newest event and newest ok event per partner flow (over all time):
-- last = [newest ts_ms, newest ok ts_ms].
CREATE TABLE IF NOT EXISTS monitor_flow_last (
    partner String,
    flow    String,
    last    AggregateFunction(maxForEach, Array(Int64))
) ENGINE = AggregatingMergeTree()
ORDER BY (partner, flow)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS monitor_flow_last_mv TO monitor_flow_last AS
SELECT partner, flow,
    maxForEachState([toInt64(ts_ms), toInt64(if(status = 'ok', ts_ms, 0))]) AS last
FROM monitor_events
GROUP BY partner, flow
;
-- Hourly rollups for charts and long windows: per partner flow, and over
-- all flows (the unfiltered chart merges 168 states a week instead of one
-- per partner flow and hour). Latency is a t-digest: small states that merge
-- fast, within about 1 % at p95. The per-flow rollup also feeds the
-- data-quality score: failed records, format errors, and how many events
-- were slower than each of monitor.SlowBounds (1 s ... 1 h, in microseconds
-- below; a test keeps the two lists equal). sums = [events, errors, bytes,
-- records, records_failed, format_errors, slower than each bound...]; the
-- first three are monitor_total_hourly's.
CREATE TABLE IF NOT EXISTS monitor_flow_hourly (
    hour     DateTime,
    partner  String,
    flow     String,
    sums     AggregateFunction(sumForEach, Array(Int64)),
    duration AggregateFunction(quantileTDigest(0.95), Int64)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(hour)
ORDER BY (partner, flow, hour)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS monitor_flow_hourly_mv TO monitor_flow_hourly AS
SELECT
    toStartOfHour(toDateTime(toUInt32(intDiv(ts_ms, 1000)))) AS hour,
    partner, flow,
    sumForEachState(arrayConcat(
        [toInt64(1), toInt64(status = 'error'), toInt64(bytes), toInt64(records), toInt64(records_failed),
         toInt64((type IN ('validated', 'rejected') AND status = 'error') OR error_class = 'format')],
        arrayMap(b -> toInt64(duration_us > b),
            [1000000, 2000000, 5000000, 10000000, 15000000, 30000000, 60000000, 120000000, 300000000, 600000000, 1800000000, 3600000000]))) AS sums,
    quantileTDigestStateIf(0.95)(toInt64(duration_us), duration_us > 0) AS duration
FROM monitor_events
GROUP BY hour, partner, flow
;
-- sums = [events, errors, bytes].
CREATE TABLE IF NOT EXISTS monitor_total_hourly (
    hour     DateTime,
    sums     AggregateFunction(sumForEach, Array(Int64)),
    duration AggregateFunction(quantileTDigest(0.95), Int64)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(hour)
ORDER BY hour
;
CREATE MATERIALIZED VIEW IF NOT EXISTS monitor_total_hourly_mv TO monitor_total_hourly AS
SELECT
    toStartOfHour(toDateTime(toUInt32(intDiv(ts_ms, 1000)))) AS hour,
    sumForEachState([toInt64(1), toInt64(status = 'error'), toInt64(bytes)]) AS sums,
    quantileTDigestStateIf(0.95)(toInt64(duration_us), duration_us > 0) AS duration
FROM monitor_events
GROUP BY hour
;
-- One row per batch stage for the pipeline view (not partitioned: small).
-- It also narrows a search by batch: the stages' time range, and their
-- partner and flow when pair_min = pair_max ("partner<TAB>flow"), so batch
-- ids need no row per event in monitor_lookup. newest is the newest event's
-- "partner<TAB>flow<TAB>type<TAB>status"; sums = [events, errors,
-- records_in, records_out, records_failed].
CREATE TABLE IF NOT EXISTS monitor_batch_stages (
    batch_id String,
    stage    String,
    newest   AggregateFunction(argMax, String, Int64),
    pair_min AggregateFunction(min, String),
    pair_max AggregateFunction(max, String),
    first_ms AggregateFunction(min, Int64),
    last_ms  AggregateFunction(max, Int64),
    sums     AggregateFunction(sumForEach, Array(Int64))
) ENGINE = AggregatingMergeTree()
ORDER BY (batch_id, stage)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS monitor_batch_stages_mv TO monitor_batch_stages AS
SELECT batch_id, stage,
    argMaxState(concat(partner, '\t', flow, '\t', type, '\t', status), toInt64(ts_ms)) AS newest,
    minState(concat(partner, '\t', flow)) AS pair_min,
    maxState(concat(partner, '\t', flow)) AS pair_max,
    minState(toInt64(ts_ms)) AS first_ms,
    maxState(toInt64(ts_ms)) AS last_ms,
    sumForEachState([toInt64(1), toInt64(status = 'error'),
        toInt64(if(type IN ('received', 'fetched', 'downloaded', 'claimed'), records, 0)),
        toInt64(if(type IN ('sent', 'uploaded', 'transformed', 'validated', 'reconciled'), records, 0)),
        toInt64(records_failed)]) AS sums
FROM monitor_events
WHERE batch_id != ''
GROUP BY batch_id, stage
;
-- Where to find an exchange, file, partner reference or business key:
-- (partner, flow, time range) lets searches use the events' primary key
-- instead of scanning a column of every row. kind: x exchange id, f file
-- name, r partner reference, k business key. Batches are found through
-- monitor_batch_stages: a row per event for a batch id shared by thousands
-- of events cost a third of this view's insert time. Earlier schemas also
-- wrote kind b (view monitor_lookup_mv); those rows are no longer read.
CREATE TABLE IF NOT EXISTS monitor_lookup (
    event_date Date,
    kind       String,
    value      String,
    partner    String,
    flow       String,
    ts_ms      Int64
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(event_date)
ORDER BY (kind, value, partner, flow, ts_ms)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS monitor_lookup_keys_mv TO monitor_lookup AS
SELECT event_date, kind, value, partner, flow, ts_ms
FROM monitor_events
ARRAY JOIN ['x', 'f', 'r', 'k'] AS kind, [exchange_id, file_name, partner_ref, business_key] AS value
WHERE value != ''
;
-- Dead-letter, replay and drop events only: open dead letters are read from
-- here instead of scanning every event.
CREATE TABLE IF NOT EXISTS monitor_dead_letters (
    event_date     Date,
    ts_ms          Int64,
    event_id       String,
    partner        String,
    flow           String,
    direction      String,
    channel        String,
    type           String,
    status         String,
    exchange_id    String,
    parent_ids     Array(String),
    batch_id       String,
    stage          String,
    business_key   String,
    partner_ref    String,
    file_name      String,
    digest         String,
    bytes          Int64,
    records        Int64,
    records_failed Int64,
    amount_fen     Int64,
    duration_us    Int64,
    attempt        Int32,
    error_class    String,
    error_code     String,
    error_message  String,
    component      String,
    node           String,
    attr_keys      Array(String),
    attr_values    Array(String)
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(event_date)
ORDER BY (exchange_id, ts_ms, event_id)
;
CREATE MATERIALIZED VIEW IF NOT EXISTS monitor_dead_letters_mv TO monitor_dead_letters AS
SELECT event_date, ts_ms, event_id, partner, flow, direction, channel, type, status, exchange_id, parent_ids,
    batch_id, stage, business_key, partner_ref, file_name, digest, bytes, records, records_failed,
    amount_fen, duration_us, attempt, error_class, error_code, error_message, component, node, attr_keys, attr_values
FROM monitor_events
WHERE type IN ('dead_lettered', 'replayed', 'dropped')
