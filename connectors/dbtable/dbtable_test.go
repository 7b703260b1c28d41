package dbtable_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/dbtable"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/monitortest"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(c *dbtable.SourceConfig)
		want string
	}{
		{"ok", func(*dbtable.SourceConfig) {}, ""},
		{"no dsn", func(c *dbtable.SourceConfig) { c.DSN = "" }, "dsn or dsn_env"},
		{"mysql", func(c *dbtable.SourceConfig) { c.DSN = "mysql://x" }, "postgres"},
		{"injection", func(c *dbtable.SourceConfig) { c.Table = "t; drop table x" }, "table:"},
		{"bad column", func(c *dbtable.SourceConfig) { c.Columns = []string{"a b"} }, "columns:"},
		{"batch", func(c *dbtable.SourceConfig) { c.BatchSize = 0 }, "batch_size"},
		{"partner", func(c *dbtable.SourceConfig) { c.Partner = "" }, "partner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dbtable.DefaultSourceConfig()
			c.DSN, c.Table, c.WatermarkColumn, c.Partner = "postgres://u@h/db", "qzj.swry", "load_seq", "datasea"
			tc.edit(c)
			err := c.Validate()
			if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
	s := dbtable.DefaultSinkConfig()
	s.DSNEnv, s.Table, s.Columns = "X", "answers", []string{"mzhub_key"}
	if err := s.Validate(); err == nil {
		t.Fatal("sink writing its key column twice validated")
	}
}

// frontEnd opens the PostgreSQL named by MZHUB_TEST_POSTGRES with a fresh
// schema for the front-end tables.
func frontEnd(t *testing.T) (*sql.DB, string, string) {
	t.Helper()
	dsn := os.Getenv("MZHUB_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("MZHUB_TEST_POSTGRES not set: skipping the front-end table test (deploy/postgres/start.sh starts a server)")
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	schema := storetest.Name("qzj")
	if _, err := db.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = db.Exec(`DROP SCHEMA ` + schema + ` CASCADE`)
		_ = db.Close()
	})
	_, err = db.Exec(`CREATE TABLE ` + schema + `.swry (
		id BIGINT PRIMARY KEY, load_seq BIGINT NOT NULL, record_id TEXT NOT NULL, type TEXT NOT NULL,
		id_number TEXT NOT NULL, event_date DATE NOT NULL, district TEXT NOT NULL, taken_at TIMESTAMPTZ)`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`CREATE TABLE ` + schema + `.answers (mzhub_key TEXT PRIMARY KEY, record_id TEXT, result TEXT, amount BIGINT)`)
	if err != nil {
		t.Fatal(err)
	}
	return db, dsn, schema
}

func insertRows(t *testing.T, db *sql.DB, schema string, from, n int, seq int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if _, err := db.Exec(`INSERT INTO `+schema+`.swry (id, load_seq, record_id, type, id_number, event_date, district) VALUES ($1, $2, $3, 'death', $4, '2026-11-30', '310101')`,
			i, seq, fmt.Sprintf("R%05d", i), fmt.Sprintf("3101011940010%05d", i)); err != nil {
			t.Fatal(err)
		}
	}
}

// collector is the bus: it keeps every message handed over, by idempotency key.
type collector struct {
	mu   sync.Mutex
	got  map[string]int
	body map[string][]byte
	fail error
}

func (c *collector) emit(_ context.Context, msgs ...connectors.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return c.fail
	}
	for _, m := range msgs {
		c.got[m.IdempotencyKey]++
		c.body[m.IdempotencyKey] = m.Body
	}
	return nil
}

func TestIntegrationPostgresSource(t *testing.T) {
	db, dsn, schema := frontEnd(t)
	ctx := context.Background()
	// Rows with equal watermarks across a batch boundary (ties broken by id).
	insertRows(t, db, schema, 1, 25, 1)
	insertRows(t, db, schema, 26, 25, 2)
	cfg := dbtable.DefaultSourceConfig()
	cfg.DSN, cfg.Table, cfg.WatermarkColumn, cfg.TakenColumn = dsn, schema+".swry", "load_seq", "taken_at"
	cfg.BatchSize, cfg.Partner, cfg.Flow, cfg.StateTable = 10, "datasea", "death", schema+".mzhub_state"
	cfg.Columns = []string{"record_id", "type", "id_number", "event_date", "district"}
	ev := &monitortest.Recorder{}
	src, err := dbtable.NewSource(*cfg, connectors.Deps{Events: ev})
	if err != nil {
		t.Fatal(err)
	}
	bus := &collector{got: map[string]int{}, body: map[string][]byte{}}

	// The bus refuses: nothing is marked.
	runCtx, cancel := context.WithCancel(ctx)
	bus.fail = errors.New("bus full")
	src.SetAfterEmit(nil)
	if _, err := runBatch(runCtx, t, src, bus); err == nil {
		t.Fatal("a refused hand-over succeeded")
	}
	bus.fail = nil
	// A crash between the hand-over and the commit: the rows stay untaken
	// and come again under the same keys.
	src.SetAfterEmit(func() error { return errors.New("SIGKILL") })
	if _, err := runBatch(runCtx, t, src, bus); err == nil || !strings.Contains(err.Error(), "SIGKILL") {
		t.Fatalf("crashed batch: %v", err)
	}
	src.SetAfterEmit(nil)
	crashed := len(bus.got)
	if crashed != 10 {
		t.Fatalf("%d rows handed over before the crash", crashed)
	}
	var taken int
	_ = db.QueryRow(`SELECT COUNT(*) FROM ` + schema + `.swry WHERE taken_at IS NOT NULL`).Scan(&taken)
	if taken != 0 {
		t.Fatalf("%d rows marked by a crashed batch", taken)
	}
	for {
		n, err := runBatch(runCtx, t, src, bus)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	cancel()
	if len(bus.got) != 50 {
		t.Fatalf("%d distinct rows handed over, want 50", len(bus.got))
	}
	for k, n := range bus.got {
		if want := 1; n != want && !(n == 2 && crashedKey(k)) {
			t.Fatalf("%s handed over %d times", k, n)
		}
	}
	_ = db.QueryRow(`SELECT COUNT(*) FROM ` + schema + `.swry WHERE taken_at IS NOT NULL`).Scan(&taken)
	if taken != 50 {
		t.Fatalf("%d rows marked taken", taken)
	}
	var rec map[string]any
	if err := json.Unmarshal(bus.body[schema+".swry/7"], &rec); err != nil || rec["record_id"] != "R00007" || rec["event_date"] == nil {
		t.Fatalf("body %s: %v", bus.body[schema+".swry/7"], err)
	}
	// New rows after the watermark are taken in the next batch.
	insertRows(t, db, schema, 51, 5, 3)
	if n, err := runBatch(ctx, t, src, bus); err != nil || n != 5 {
		t.Fatalf("new rows: %d %v", n, err)
	}
	if ev.Count(func(e monitor.Event) bool { return e.Type == monitor.Received && e.Partner == "datasea" }) == 0 {
		t.Fatal("no received events")
	}
}

// crashedKey tells whether the key was one of the first batch's (ids 1-10),
// handed over twice because of the crash.
func crashedKey(k string) bool {
	i := strings.LastIndexByte(k, '/')
	var id int
	_, _ = fmt.Sscan(k[i+1:], &id)
	return id >= 1 && id <= 10
}

func runBatch(ctx context.Context, t *testing.T, src *dbtable.Source, bus *collector) (int, error) {
	t.Helper()
	return src.Batch(ctx, bus.emit)
}

func TestIntegrationPostgresSink(t *testing.T) {
	db, dsn, schema := frontEnd(t)
	ctx := context.Background()
	cfg := dbtable.DefaultSinkConfig()
	cfg.DSN, cfg.Table, cfg.Columns = dsn, schema+".answers", []string{"record_id", "result", "amount"}
	sink, err := dbtable.NewSink(*cfg, connectors.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	msg := connectors.Message{IdempotencyKey: "answers/R1", Body: []byte(`{"record_id":"R1","result":"applied","amount":1500000}`)}
	for range 3 {
		if err := sink.Send(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	var amount int64
	if err := db.QueryRow(`SELECT COUNT(*), MAX(amount) FROM `+schema+`.answers`).Scan(&n, &amount); err != nil || n != 1 || amount != 1500000 {
		t.Fatalf("%d rows, amount %d: %v", n, amount, err)
	}
	if err := sink.Send(ctx, connectors.Message{IdempotencyKey: "x", Body: []byte(`[1]`)}); !errors.Is(err, connectors.ErrPermanent) {
		t.Fatalf("bad body: %v", err)
	}
}
