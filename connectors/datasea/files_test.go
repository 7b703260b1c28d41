package datasea_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/bus/local"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/datasea"
	"github.com/shanghai-mca/mzhub/connectors/datasea/dataseasim"
	"github.com/shanghai-mca/mzhub/connectors/sftp"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/monitortest"
	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/security/audit/audittest"
	"github.com/shanghai-mca/mzhub/security/fieldcrypt"
	"github.com/shanghai-mca/mzhub/services/allowance"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// filesEnv runs the shipped configs/routes/datasea-files.yaml in the
// route engine on the state database's local bus, polling the simulated
// platform's SFTP drop (an in-process SFTP server), and the records
// topic's consumer applying into the allowance service, as the hub does.
type filesEnv struct {
	t   *testing.T
	sim *dataseasim.Sim
	db  *store.DB
	bus bus.Bus
	ev  *monitortest.Recorder
	al  *allowance.Service
	dir string
	ep  *datasea.Endpoint

	mu      sync.Mutex
	sum     datasea.Applied // what the consumer's applies did, summed
	applied chan struct{}
	stop    func()
}

func newFilesEnv(t *testing.T) *filesEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sim := dataseasim.New()
	if err := sim.StartDrop(filepath.Join(t.TempDir(), "drop")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sim.Close() })
	db := storetest.Open(t)
	if err := datasea.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	fields, err := fieldcrypt.NewRing(map[string][]byte{"k1": []byte("0123456789abcdef")}, []byte("blind index key of the tests"))
	if err != nil {
		t.Fatal(err)
	}
	al, err := allowance.New(ctx, allowance.Options{DB: db, Fields: fields, Audit: &audittest.Recorder{}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := local.Open(ctx, db, bus.LocalConfig{CommitInterval: 5 * time.Millisecond, MaxBatch: 500, CacheBytes: 1 << 20}, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc := sim.DropConfig()
	sc.Node, sc.LocalDir = "node-a", filepath.Join(t.TempDir(), "local")
	sc.OpTimeout, sc.RetryBackoff = 10*time.Second, 10*time.Millisecond
	e := &filesEnv{t: t, sim: sim, db: db, bus: b, ev: &monitortest.Recorder{}, al: al, dir: filepath.Join(sim.DropRoot(), dataseasim.DropDir),
		ep: &datasea.Endpoint{Drop: &datasea.Drop{SFTP: sc, Every: 20 * time.Millisecond}}, applied: make(chan struct{}, 1)}
	cons := &datasea.Consumer{Bus: b, Apply: al, Events: e.ev, Applied: func(a datasea.Applied) {
		e.mu.Lock()
		e.sum = e.sum.Add(a)
		e.mu.Unlock()
		select {
		case e.applied <- struct{}{}:
		default:
		}
	}}
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	t.Cleanup(func() {
		if e.stop != nil {
			e.stop()
		}
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		_ = b.Close(context.Background())
	})
	return e
}

// start runs the engine on the shipped files route (a restarted hub: only
// the state store and the drop are the same).
func (e *filesEnv) start() {
	e.t.Helper()
	dir := e.t.TempDir()
	b, err := os.ReadFile("../../configs/routes/datasea-files.yaml")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "datasea-files.yaml"), b, 0o600); err != nil {
		e.t.Fatal(err)
	}
	reg := connectors.NewRegistry()
	spec, err := connectors.Builtin().Lookup(datasea.ConnectorKind)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := reg.Register(spec); err != nil {
		e.t.Fatal(err)
	}
	eng, err := routes.NewEngine(routes.EngineConfig{ReloadInterval: -1}, routes.Deps{Bus: e.bus, Store: e.db, Connectors: reg,
		Events: e.ev, Metrics: prometheus.NewRegistry(), Partners: hubClients{datasea.Partner: e.ep}})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := eng.Load(dir); err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	e.stop = func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				e.t.Error(err)
			}
		case <-time.After(30 * time.Second):
			e.t.Error("the engine did not stop")
		}
		e.stop = nil
	}
}

// waitEvent waits for an event matching (counting those already seen: at
// least n of them).
func (e *filesEnv) waitEvent(what string, n int, match func(monitor.Event) bool) {
	e.t.Helper()
	late := time.After(time.Minute)
	for {
		next := e.ev.Next(match)
		if e.ev.Count(match) >= n {
			return
		}
		select {
		case <-next:
		case <-late:
			e.t.Fatalf("no %s event (%d of %d)", what, e.ev.Count(match), n)
		}
	}
}

// count counts the rows of a table of the allowance service.
func (e *filesEnv) count(table string) int {
	e.t.Helper()
	var n int
	if err := e.db.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// waitApplied waits until the consumer's applies summed at least seen
// records seen before and quarantined records quarantined.
func (e *filesEnv) waitApplied(fresh, seen, quarantined int) datasea.Applied {
	e.t.Helper()
	late := time.After(time.Minute)
	for {
		e.mu.Lock()
		sum := e.sum
		e.mu.Unlock()
		if sum.New >= fresh && sum.Seen >= seen && sum.Quarantined >= quarantined {
			return sum
		}
		select {
		case <-e.applied:
		case <-late:
			e.t.Fatalf("applied %+v, want at least %d new, %d seen, %d quarantined", sum, fresh, seen, quarantined)
		}
	}
}

func (e *filesEnv) exists(p string) bool {
	_, err := os.Stat(filepath.Join(e.dir, p))
	return err == nil
}

// sentinel drops a file whose done file miscounts its lines and returns a
// wait for its failed event, emitted once it is moved away: the files
// before it in name order are handled by then.
func (e *filesEnv) sentinel(name string) func() {
	e.t.Helper()
	var b bytes.Buffer
	if err := datasea.WriteFile(&b, dataseasim.Generate(3, 14, "2025-06-03", 1)); err != nil {
		e.t.Fatal(err)
	}
	if err := dataseasim.WriteBatch(e.dir, name, b.Bytes(), 1); err != nil {
		e.t.Fatal(err)
	}
	return func() {
		e.t.Helper()
		e.waitEvent("failed "+name, 1, func(ev monitor.Event) bool { return ev.Type == monitor.Failed && ev.FileName == name })
	}
}

// moveBack puts a handled file and its done file back into the drop.
func (e *filesEnv) moveBack(sub, name string) {
	e.t.Helper()
	for _, s := range []string{"", ".done"} {
		if err := os.Rename(filepath.Join(e.dir, sub, name+s), filepath.Join(e.dir, name+s)); err != nil {
			e.t.Fatal(err)
		}
	}
}

// TestFilesRoute runs the shipped files route against the simulated drop:
// a day's files are emitted line by line, the good lines applied once, the
// bad lines quarantined with their line numbers and never applied; a file
// whose done file miscounts applies nothing and goes to failed/; the same
// file dropped again changes nothing; a hub that crashed after emitting a
// file but before finishing its claim emits it again on restart, and the
// consumer applies nothing twice.
func TestFilesRoute(t *testing.T) {
	e := newFilesEnv(t)
	ctx := context.Background()
	recs := dataseasim.Generate(60, 12, "2025-06-01", 1)
	badCheck := "X9|death|310101190001011231|王五|2025-06-01|310101|"  // wrong check digit
	badFields := "X10|death|310101190001011230|赵六|2025-06-01|310101" // six fields
	if err := e.sim.DropDay("2025-06-01", recs, badCheck, badFields); err != nil {
		t.Fatal(err)
	}
	var deaths int
	for _, r := range recs {
		if r.Kind == datasea.Death {
			deaths++
		}
	}
	if deaths == 0 || deaths == len(recs) || e.sim.Dropped() != len(recs) {
		t.Fatalf("the day has %d deaths of %d records, %d dropped: the test proves nothing about both files", deaths, len(recs), e.sim.Dropped())
	}
	// A later file whose done file counts one line too few: nothing of it
	// may be applied.
	var miscounted bytes.Buffer
	later := dataseasim.Generate(5, 13, "2025-06-02", 1)
	if err := datasea.WriteFile(&miscounted, later); err != nil {
		t.Fatal(err)
	}
	if err := dataseasim.WriteBatch(e.dir, "MIGRATION_20250602.txt", miscounted.Bytes(), int64(len(later)-1)); err != nil {
		t.Fatal(err)
	}
	// A file not of the platform stays where it is.
	if err := dataseasim.WriteBatch(e.dir, "OTHER_20250601.txt", miscounted.Bytes(), int64(len(later))); err != nil {
		t.Fatal(err)
	}

	e.start()
	// One pass takes the files in name order; the miscounted one is last
	// and its failed event comes once it is moved away: all three are done.
	e.waitEvent("failed MIGRATION_20250602.txt", 1, func(ev monitor.Event) bool {
		return ev.Type == monitor.Failed && ev.FileName == "MIGRATION_20250602.txt"
	})
	e.waitApplied(len(recs), 0, 2)
	if n := e.count("allow_records"); n != len(recs) {
		t.Fatalf("%d records applied, want %d (the good lines of the day)", n, len(recs))
	}
	for _, r := range later {
		var n int
		if err := e.db.QueryRow(`SELECT COUNT(*) FROM allow_records WHERE record_id = ?`, r.ID).Scan(&n); err != nil || n != 0 {
			t.Fatalf("record %s of the miscounted file applied (%d, %v)", r.ID, n, err)
		}
	}
	if ev := e.ev.Count(func(ev monitor.Event) bool {
		return ev.Type == monitor.Rejected && ev.FileName == "MIGRATION_20250602.txt" && ev.ErrorCode == "trailer_mismatch"
	}); ev != 1 {
		t.Fatalf("%d trailer_mismatch events for the miscounted file, want 1", ev)
	}
	deathFile := "DEATH_20250601.txt"
	if ev := e.ev.Count(func(ev monitor.Event) bool {
		return ev.Type == monitor.Validated && ev.FileName == deathFile && ev.Status == monitor.Warning &&
			ev.Records == int64(deaths) && ev.RecordsFailed == 2 && ev.Flow == "death"
	}); ev != 1 {
		t.Fatalf("%d validated events for %s with its counts, want 1: %+v", ev, deathFile, e.ev.Events())
	}
	// The bad lines: quarantined with the file and line number, never applied.
	rows, err := e.db.QueryContext(ctx, `SELECT source, ref, reason, raw FROM allow_quarantine ORDER BY ref`)
	if err != nil {
		t.Fatal(err)
	}
	var quarantined []string
	for rows.Next() {
		var source, ref, reason, raw string
		if err := rows.Scan(&source, &ref, &reason, &raw); err != nil {
			t.Fatal(err)
		}
		if source != datasea.SourceSFTP || reason == "" || strings.Contains(raw, "310101190001011231") {
			t.Errorf("quarantined %s %q %q %q", source, ref, reason, raw)
		}
		quarantined = append(quarantined, ref)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		deathFile + " line " + strconv.Itoa(deaths+1),
		deathFile + " line " + strconv.Itoa(deaths+2),
	}
	if strings.Join(quarantined, ",") != strings.Join(want, ",") {
		t.Fatalf("quarantined %q, want %q", quarantined, want)
	}
	for _, id := range []string{"X9", "X10"} {
		var n int
		if err := e.db.QueryRow(`SELECT COUNT(*) FROM allow_records WHERE record_id = ?`, id).Scan(&n); err != nil || n != 0 {
			t.Fatalf("bad line %s applied", id)
		}
	}
	for _, p := range []string{"processed/" + deathFile, "processed/MIGRATION_20250601.txt", "failed/MIGRATION_20250602.txt", "OTHER_20250601.txt"} {
		if !e.exists(p) {
			t.Fatalf("%s is not where it belongs", p)
		}
	}

	// The same file dropped again: the ledger knows its content, it is
	// moved away and nothing is emitted.
	e.moveBack("processed", deathFile)
	e.sentinel("MIGRATION_20250603.txt")()
	if n := e.ev.Count(func(ev monitor.Event) bool {
		return ev.Type == monitor.Dropped && ev.FileName == deathFile && ev.ErrorCode == "already_processed"
	}); n != 1 {
		t.Fatalf("%d duplicate events for the file dropped again, want 1", n)
	}
	if !e.exists("processed/"+deathFile) || e.exists(deathFile) {
		t.Fatal("the file dropped again was not moved away")
	}

	// A crash after emitting a file but before finishing its claim: the
	// claim is ours and unfinished, the file still in the drop. The
	// restarted route emits it again under the same keys.
	e.stop()
	if _, err := e.db.ExecContext(ctx, `UPDATE sftp_claims SET state = ?, finished_at = 0, detail = '' WHERE path = ?`,
		sftp.ClaimClaimed, dataseasim.DropDir+"/MIGRATION_20250601.txt"); err != nil {
		t.Fatal(err)
	}
	e.moveBack("processed", "MIGRATION_20250601.txt")
	handled := e.sentinel("MIGRATION_20250604.txt")
	e.start()
	handled()
	if n := e.ev.Count(func(ev monitor.Event) bool {
		return ev.Type == monitor.Validated && ev.FileName == "MIGRATION_20250601.txt"
	}); n != 2 {
		t.Fatalf("the file of the crashed claim was validated %d times, want 2 (once more after the restart)", n)
	}
	if !e.exists("processed/MIGRATION_20250601.txt") {
		t.Fatal("the file of the crashed claim was not moved to processed/ after the restart")
	}
	// Its records reached the consumer again (the route publishes straight
	// to the topic) and were seen, not applied.
	moves := len(recs) - deaths
	e.waitApplied(len(recs), moves, 2)

	// The death file's messages published again straight on the topic are
	// seen too, not applied twice.
	var death bytes.Buffer
	var dayDeaths []datasea.Record
	for _, r := range recs {
		if r.Kind == datasea.Death {
			dayDeaths = append(dayDeaths, r)
		}
	}
	if err := datasea.WriteFile(&death, dayDeaths); err != nil {
		t.Fatal(err)
	}
	good, bad, err := datasea.ParseFile(deathFile, bytes.NewReader(death.Bytes()), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := datasea.FileMessages(deathFile, "0123456789abcdef0123", good, bad)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.bus.Publish(ctx, datasea.Topic, msgs...); err != nil {
		t.Fatal(err)
	}
	sum := e.waitApplied(len(recs), moves+len(good), 2)
	if sum.New != len(recs) {
		t.Fatalf("the consumer applied %d new records, want %d: a record was applied twice", sum.New, len(recs))
	}
	if n := e.count("allow_records"); n != len(recs) {
		t.Fatalf("%d records applied, want %d", n, len(recs))
	}
	if n := e.count("allow_quarantine"); n != 2 {
		t.Fatalf("%d quarantined, want 2", n)
	}
	var state string
	if err := e.db.QueryRow(`SELECT state FROM sftp_claims WHERE path = ?`, dataseasim.DropDir+"/MIGRATION_20250601.txt").Scan(&state); err != nil || state != sftp.ClaimProcessed {
		t.Fatalf("the re-emitted file's claim: %q %v", state, err)
	}
}

// TestNotConfigured: a datasea route whose way in the hub lacks is not
// built (ErrNotConfigured), each feed asking for its own.
func TestNotConfigured(t *testing.T) {
	drop := &datasea.Drop{SFTP: sftp.Config{}, Every: time.Minute}
	for _, tc := range []struct {
		name     string
		feed     string
		partners any
	}{
		{"no partner clients", datasea.FeedFiles, nil},
		{"no data sea client", datasea.FeedFiles, hubClients{}},
		{"files without the drop", datasea.FeedFiles, hubClients{datasea.Partner: &datasea.Endpoint{}}},
		{"death without the API", "death", hubClients{datasea.Partner: &datasea.Endpoint{Drop: drop}}},
		{"migration without the API", "migration", hubClients{datasea.Partner: &datasea.Endpoint{Drop: drop}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec, err := connectors.Builtin().Lookup(datasea.ConnectorKind)
			if err != nil {
				t.Fatal(err)
			}
			cfg := spec.Source.NewConfig().(*datasea.SourceConfig)
			cfg.Feed = tc.feed
			_, err = spec.Source.New(cfg, connectors.Deps{Partners: tc.partners, Store: storetest.Open(t)})
			if !errors.Is(err, datasea.ErrNotConfigured) {
				t.Fatalf("got %v, want ErrNotConfigured", err)
			}
		})
	}
}
