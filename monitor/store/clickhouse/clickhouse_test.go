package clickhouse_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/sample"
	"github.com/shanghai-mca/mzhub/monitor/store/clickhouse"
	"github.com/shanghai-mca/mzhub/monitor/store/eventstoretest"
)

// open returns a store in a fresh database of the server named by
// MZHUB_TEST_CLICKHOUSE, dropped after the test.
func open(t testing.TB) *clickhouse.Store {
	t.Helper()
	addr := os.Getenv("MZHUB_TEST_CLICKHOUSE")
	if addr == "" {
		t.Skip("MZHUB_TEST_CLICKHOUSE not set: skipping ClickHouse test (deploy/clickhouse/start.sh starts a server)")
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	db := "mzhub_test_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := clickhouse.Open(ctx, clickhouse.Options{Addr: addr, Database: db, Username: "default"})
	if err != nil {
		t.Fatal(err)
	}
	// Registered before the suite's Close, so it runs after it: use a
	// connection of its own.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := clickhouse.DropDatabase(ctx, clickhouse.Options{Addr: addr, Database: db, Username: "default"}); err != nil {
			t.Errorf("drop %s: %v", db, err)
		}
	})
	return s
}

func TestIntegrationClickHouseStoreSuite(t *testing.T) {
	eventstoretest.Run(t, func(t *testing.T) monitor.Store { return open(t) })
}

// TestSchemaCopyInDeploy checks that deploy/clickhouse/schema.sql (for
// operators; a symbolic link to the embedded file) still resolves to the
// schema the store applies, e.g. after the file moves or on a checkout
// without symbolic links.
func TestSchemaCopyInDeploy(t *testing.T) {
	deploy, err := os.ReadFile("../../../deploy/clickhouse/schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	embedded, err := os.ReadFile("schema/schema.sql")
	if err != nil {
		t.Fatal(err)
	}
	if string(deploy) != string(embedded) {
		t.Error("deploy/clickhouse/schema.sql differs from monitor/store/clickhouse/schema/schema.sql: restore the symbolic link")
	}
	// Words, not substrings: arrayMap is fine, the Map type is not.
	for _, banned := range []string{`DateTime64`, `Map\(`, `TTL`, `CODEC`, `INDEX`, `LowCardinality`} {
		re := regexp.MustCompile(`\b` + banned)
		for _, stmt := range clickhouse.Schema() {
			if re.MatchString(stmt) {
				t.Errorf("schema uses %q, which 18.16 does not run", banned)
			}
		}
	}
}

func TestIntegrationClickHouseRetentionAndRollups(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	old := time.Date(2026, 8, 15, 12, 0, 0, 0, time.UTC)
	recent := time.Date(2026, 11, 5, 12, 0, 0, 0, time.UTC)
	evs := []monitor.Event{
		{Time: old, ID: "o1", Partner: "bank.boc", Flow: "allowance", Type: monitor.Sent, Status: monitor.OK, ExchangeID: "o1", ParentIDs: []string{"p"}},
		{Time: recent, ID: "r1", Partner: "bank.boc", Flow: "allowance", Type: monitor.Sent, Status: monitor.OK, ExchangeID: "r1"},
	}
	if err := s.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	// Appending the same batch again (a writer retry) does not show twice.
	if err := s.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	got, err := s.Search(ctx, monitor.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Errorf("after a retried batch: %d events, want 2", len(got))
	}
	dropped, err := s.DropMonthsBefore(ctx, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"monitor_events/202608", "monitor_flow_hourly/202608", "monitor_lineage/202608",
		"monitor_lookup/202608", "monitor_total_hourly/202608"}
	sort.Strings(dropped)
	if !reflect.DeepEqual(dropped, want) {
		t.Errorf("dropped %v, want %v", dropped, want)
	}
	got, err = s.Search(ctx, monitor.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != "r1" {
		t.Errorf("after retention: %+v", got)
	}
}

// TestIntegrationClickHouseBackfill drops every view and its target from a
// database holding events, adds views of earlier schemas and a rollup of
// an earlier shape, and opens it again: the targets come back filled from
// the stored events, giving the same answers as before, and the legacy
// views are gone.
func TestIntegrationClickHouseBackfill(t *testing.T) {
	s := open(t)
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	evs := append(sample.Scenario(now, 3), sample.Bulk(now.Add(-48*time.Hour), now, 5000, 0, 3)...)
	if err := s.Append(ctx, evs); err != nil {
		t.Fatal(err)
	}
	answers := func(s *clickhouse.Store) string {
		t.Helper()
		var b strings.Builder
		for _, q := range []func() (any, error){
			func() (any, error) { return s.LastSeen(ctx) },
			func() (any, error) { return s.Batches(ctx, monitor.BatchQuery{}) },
			func() (any, error) {
				return s.Series(ctx, monitor.SeriesQuery{From: now.Add(-48 * time.Hour).Truncate(time.Hour), To: now, Step: 6 * time.Hour})
			},
			func() (any, error) {
				return s.Series(ctx, monitor.SeriesQuery{From: now.Add(-48 * time.Hour).Truncate(time.Hour), To: now, Step: time.Hour, Partner: "p001"})
			},
			func() (any, error) {
				return s.Aggregate(ctx, monitor.AggQuery{From: now.Add(-24 * time.Hour), To: now, Coarse: true})
			},
			func() (any, error) { return s.Children(ctx, []string{"x0", "x100", "x4900"}, 0) },
			func() (any, error) { return s.DeadLetters(ctx, monitor.Filter{}) },
			func() (any, error) { return s.Search(ctx, monitor.Filter{BatchID: "b0", Limit: 20}) },
		} {
			v, err := q()
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%v\n", v)
		}
		return b.String()
	}
	before := answers(s)
	conn := s.Conn()
	for _, stmt := range clickhouse.Schema() {
		if f := strings.Fields(stmt); len(f) > 7 && f[1] == "MATERIALIZED" {
			for _, name := range []string{f[6], f[8]} { // the view, then its target
				if err := conn.Exec(ctx, "DROP TABLE "+name); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, name := range []string{"monitor_hourly_mv", "monitor_lookup_mv"} {
		if err := conn.Exec(ctx, "CREATE MATERIALIZED VIEW "+name+" ENGINE = Memory AS SELECT partner FROM monitor_events"); err != nil {
			t.Fatal(err)
		}
	}
	// A rollup of an earlier shape, filled: it must be rebuilt, not kept.
	for _, stmt := range []string{
		`CREATE TABLE monitor_flow_hourly (hour DateTime, partner String, flow String, events AggregateFunction(count))
			ENGINE = AggregatingMergeTree() PARTITION BY toYYYYMM(hour) ORDER BY (partner, flow, hour)`,
		`CREATE MATERIALIZED VIEW monitor_flow_hourly_mv TO monitor_flow_hourly AS SELECT
			toStartOfHour(toDateTime(toUInt32(intDiv(ts_ms, 1000)))) AS hour, partner, flow, countState() AS events
			FROM monitor_events GROUP BY hour, partner, flow`,
		`INSERT INTO monitor_flow_hourly (hour, partner, flow, events) SELECT hour, partner, flow, events FROM (` +
			`SELECT toStartOfHour(toDateTime(toUInt32(intDiv(ts_ms, 1000)))) AS hour, partner, flow, countState() AS events
			FROM monitor_events GROUP BY hour, partner, flow)`,
	} {
		if err := conn.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	db := s.Database()
	_ = s.Close()
	s2, err := clickhouse.Open(ctx, clickhouse.Options{Addr: os.Getenv("MZHUB_TEST_CLICKHOUSE"), Database: db})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if after := answers(s2); after != before {
		t.Errorf("after backfill:\n%s\nbefore:\n%s", after, before)
	}
	var legacy uint64
	if err := s2.Conn().QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name IN ('monitor_hourly_mv', 'monitor_lookup_mv')", db).Scan(&legacy); err != nil {
		t.Fatal(err)
	}
	if legacy != 0 {
		t.Errorf("%d legacy views are still there", legacy)
	}
}

// BenchmarkIntegrationClickHouseIngest measures Append of 10k-event batches
// (the writer's flush size); reports events/s.
func BenchmarkIntegrationClickHouseIngest(b *testing.B) {
	s := open(b)
	ctx := context.Background()
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	batch := sample.Bulk(from, from.Add(time.Hour), 10000, 0, 1)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for j := range batch {
			batch[j].ID = fmt.Sprintf("b%d-%d", i, j)
		}
		if err := s.Append(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(batch))/time.Since(start).Seconds(), "events/s")
}

// BenchmarkIntegrationClickHouseIngestParallel is BenchmarkIntegrationClickHouseIngest
// with two concurrent writers (e.g. two hub replicas), at the writer's
// default batch (flush_size 10000) and at 50,000: every insert writes a part
// to the events table and to each rollup, about 160 files, so where the
// server's disk is slow to create files, larger batches are the lever.
func BenchmarkIntegrationClickHouseIngestParallel(b *testing.B) {
	for _, size := range []int{10000, 50000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := open(b)
			from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
			b.SetParallelism(1) // GOMAXPROCS (2) goroutines
			start := time.Now()
			var seq atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				g := seq.Add(1)
				batch := sample.Bulk(from, from.Add(time.Hour), size, 0, uint64(g))
				i := 0
				for pb.Next() {
					for j := range batch {
						batch[j].ID = fmt.Sprintf("p%d-%d-%d", g, i, j)
					}
					if err := s.Append(context.Background(), batch); err != nil {
						b.Error(err)
						return
					}
					i++
				}
			})
			b.ReportMetric(float64(b.N*size)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// TestSlowBoundsInSchema keeps the rollup's slow-event thresholds equal to
// monitor.SlowBounds, which Aggregate indexes them by.
func TestSlowBoundsInSchema(t *testing.T) {
	var list string
	for _, stmt := range clickhouse.Schema() {
		if i := strings.Index(stmt, "toInt64(duration_us > b),"); i >= 0 {
			rest := stmt[i:]
			list = rest[strings.Index(rest, "[")+1 : strings.Index(rest, "]")]
		}
	}
	var want []string
	for _, b := range monitor.SlowBounds {
		want = append(want, fmt.Sprint(b.Microseconds()))
	}
	if got := strings.Fields(strings.ReplaceAll(list, ",", " ")); !reflect.DeepEqual(got, want) {
		t.Errorf("schema counts events slower than %v µs, monitor.SlowBounds is %v", got, want)
	}
}
