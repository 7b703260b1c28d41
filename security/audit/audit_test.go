package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

func openLog(t *testing.T, db *store.DB, c clock.Clock) *Log {
	t.Helper()
	l, err := Open(context.Background(), db, testKey, WithClock(c))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func fill(t *testing.T, l *Log, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		if _, err := l.Append(context.Background(), Record{
			Actor: "user:ops1", SourceIP: "10.0.0.1", Action: "batch.replay",
			Object: fmt.Sprintf("batch-%d", i), Outcome: OutcomeSuccess, RequestID: fmt.Sprintf("req-%d", i),
		}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestAudit(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		fc := clock.NewFake(time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC))
		l := openLog(t, db, fc)

		rep, err := l.Verify(ctx)
		if err != nil || !rep.OK() || rep.Checked != 0 {
			t.Fatalf("empty: %v %v", rep, err)
		}
		fill(t, l, 5)
		rep, err = l.Verify(ctx)
		if err != nil || !rep.OK() || rep.Checked != 5 || rep.LastSeq != 5 {
			t.Fatalf("after 5: %v %v", rep, err)
		}

		t.Run("masking", func(t *testing.T) {
			if _, err := l.Append(ctx, Record{Actor: "user:ops1", Action: "person.view", Object: "person 11010519491231002X", Outcome: OutcomeSuccess, Detail: "phone 13812345678"}); err != nil {
				t.Fatal(err)
			}
			es, err := l.List(ctx, Filter{Action: "person.view"})
			if err != nil || len(es) != 1 {
				t.Fatalf("List: %v %v", es, err)
			}
			if es[0].Object != "person 110***********002X" || es[0].Detail != "phone 138****5678" {
				t.Fatalf("not masked: %+v", es[0])
			}
		})

		t.Run("concurrent appends", func(t *testing.T) {
			var wg sync.WaitGroup
			errs := make(chan error, 100)
			// Two Log values on one database stand for two replicas.
			logs := []*Log{l, openLog(t, db, fc)}
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					for i := 0; i < 10; i++ {
						if _, err := logs[g%2].Append(ctx, Record{Actor: fmt.Sprintf("system:g%d", g), Action: "x", Outcome: OutcomeSuccess}); err != nil {
							errs <- err
						}
					}
				}(g)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			rep, err := l.Verify(ctx)
			if err != nil || !rep.OK() || rep.Checked != 86 {
				t.Fatalf("after concurrent appends: %v %v", rep, err)
			}
		})

		t.Run("export", func(t *testing.T) {
			var buf bytes.Buffer
			n, err := l.Export(ctx, &buf)
			if err != nil || n != 86 {
				t.Fatalf("Export = %d, %v", n, err)
			}
			rep, err := VerifyExport(bytes.NewReader(buf.Bytes()), testKey)
			if err != nil || !rep.OK() || rep.Checked != 86 {
				t.Fatalf("VerifyExport: %v %v", rep, err)
			}
			edited := strings.Replace(buf.String(), `"object":"batch-3"`, `"object":"batch-9"`, 1)
			rep, err = VerifyExport(strings.NewReader(edited), testKey)
			if err != nil || rep.OK() || rep.Break.Seq != 3 || rep.Break.Kind != KindEdited {
				t.Fatalf("VerifyExport of an edited file: %v %v", rep, err)
			}
			rep, _ = VerifyExport(bytes.NewReader(buf.Bytes()), []byte("another key of sixteen+"))
			if rep.OK() {
				t.Fatal("export verified with the wrong key")
			}
		})
	})
}

// tamper runs SQL directly against the database, as an attacker with file
// access would: first dropping the append-only triggers, then editing.
func tamper(t *testing.T, db *store.DB, stmts ...string) {
	t.Helper()
	on := ""
	if db.Dialect() == store.Postgres {
		on = " ON audit_log"
	}
	stmts = append([]string{"DROP TRIGGER IF EXISTS audit_log_no_update" + on, "DROP TRIGGER IF EXISTS audit_log_no_delete" + on}, stmts...)
	for _, s := range stmts {
		if _, err := db.ExecContext(context.Background(), s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestVerifyFindsTampering(t *testing.T) {
	forged := `INSERT INTO audit_log (seq, at_ms, actor, source_ip, action, object, outcome, request_id, detail, prev_mac, mac)
		SELECT %d, at_ms, 'user:mallory', source_ip, action, object, outcome, request_id, detail, mac, mac FROM audit_log WHERE seq = %d`
	tests := []struct {
		name string
		sql  []string
		seq  int64
		kind string
	}{
		{"edit object", []string{`UPDATE audit_log SET object = 'batch-99' WHERE seq = 4`}, 4, KindEdited},
		{"edit outcome", []string{`UPDATE audit_log SET outcome = 'failure' WHERE seq = 1`}, 1, KindEdited},
		{"edit time", []string{`UPDATE audit_log SET at_ms = at_ms + 1 WHERE seq = 10`}, 10, KindEdited},
		{"edit mac too", []string{`UPDATE audit_log SET actor = 'user:x', mac = 'ff' WHERE seq = 6`}, 6, KindEdited},
		{"delete middle", []string{`DELETE FROM audit_log WHERE seq = 5`}, 5, KindRemoved},
		{"delete first", []string{`DELETE FROM audit_log WHERE seq = 1`}, 1, KindRemoved},
		{"delete and renumber", []string{`DELETE FROM audit_log WHERE seq = 5`, `UPDATE audit_log SET seq = seq - 1 WHERE seq > 5`}, 5, KindRemoved},
		{"delete last", []string{`DELETE FROM audit_log WHERE seq = 10`}, 10, KindRemoved},
		{"insert at end", []string{fmt.Sprintf(forged, 11, 10)}, 11, KindInserted},
		{"insert in middle", []string{
			`UPDATE audit_log SET seq = seq + 100 WHERE seq > 7`,
			`UPDATE audit_log SET seq = seq - 99 WHERE seq > 100`,
			fmt.Sprintf(forged, 8, 7),
		}, 8, KindInserted},
		{"reset head", []string{`UPDATE audit_state SET head_seq = 9`}, 9, KindEdited},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := storetest.Open(t)
			l := openLog(t, db, clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
			fill(t, l, 10)
			tamper(t, db, tt.sql...)
			rep, err := l.Verify(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() || rep.Break.Seq != tt.seq || rep.Break.Kind != tt.kind {
				t.Fatalf("got %s; want %s at seq %d", rep, tt.kind, tt.seq)
			}
		})
	}
}

func TestAppendOnly(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		l := openLog(t, db, clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
		fill(t, l, 3)
		for _, q := range []string{
			`UPDATE audit_log SET object = 'x' WHERE seq = 2`,
			`DELETE FROM audit_log WHERE seq = 3`,
			`DELETE FROM audit_log`,
		} {
			if _, err := db.ExecContext(ctx, q); err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("%s: %v", q, err)
			}
		}
		if rep, err := l.Verify(ctx); err != nil || !rep.OK() || rep.Checked != 3 {
			t.Fatalf("after refused edits: %v %v", rep, err)
		}
	})
}

func TestPrune(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
		fc := clock.NewFake(start)
		l := openLog(t, db, fc)
		for i := 0; i < 10; i++ {
			fill(t, l, 1)
			fc.Advance(30 * 24 * time.Hour)
		}
		// now = start + 300 days; records at days 0, 30, …, 270.
		if _, err := l.Prune(ctx, fc.Now().Add(-100*24*time.Hour), 180*24*time.Hour); !errors.Is(err, ErrRetention) {
			t.Fatalf("prune inside retention: %v", err)
		}
		n, err := l.Prune(ctx, fc.Now().Add(-200*24*time.Hour), 0)
		if err != nil || n != 4 { // days 0, 30, 60, 90 are before day 100
			t.Fatalf("Prune = %d, %v", n, err)
		}
		rep, err := l.Verify(ctx)
		if err != nil || !rep.OK() || rep.FirstSeq != 5 || rep.LastSeq != 11 {
			t.Fatalf("after prune: %v %v", rep, err)
		}
		tamper(t, db, `DELETE FROM audit_log WHERE seq = 5`)
		if rep, _ := l.Verify(ctx); rep.OK() || rep.Break.Seq != 5 || rep.Break.Kind != KindRemoved {
			t.Fatalf("delete after prune: %v", rep)
		}
		tamper(t, db, `UPDATE audit_state SET base_seq = 5`)
		if rep, _ := l.Verify(ctx); rep.OK() {
			t.Fatalf("moved base not found: %v", rep)
		}
	})
}

func FuzzVerifyExport(f *testing.F) {
	f.Add(`{"format":"mzhub-audit-export/1"}` + "\n" + `{"seq":1,"time":"2026-01-01T00:00:00Z","actor":"a","prev_mac":"","mac":"00"}`)
	f.Add("not json")
	f.Fuzz(func(t *testing.T, s string) {
		rep, err := VerifyExport(strings.NewReader(s), testKey)
		if err == nil && rep.OK() && rep.Checked > 0 {
			t.Fatalf("forged export verified: %q", s)
		}
	})
}

func TestAnchor(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t)
	l := openLog(t, db, clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)))
	fill(t, l, 5)
	a, err := l.Head(ctx)
	if err != nil || a.Seq != 5 {
		t.Fatalf("head %v %v", a, err)
	}
	b, err := ParseAnchor(a.String())
	if err != nil || b != a {
		t.Fatalf("round trip %v %v", b, err)
	}
	fill(t, l, 2)
	if err := l.CheckAnchor(ctx, a); err != nil {
		t.Fatal(err)
	}
	// Roll the log back to 4 records with the state row as it was then (an
	// old copy of the file would do): the chain alone still verifies.
	old, _ := l.List(ctx, Filter{})
	tamper(t, db, `DELETE FROM audit_log WHERE seq > 4`,
		fmt.Sprintf(`UPDATE audit_state SET head_seq = 4, head_mac = '%s', head_tag = '%s'`, old[3].MAC, tag(testKey, "head", 4, old[3].MAC)))
	if rep, _ := l.Verify(ctx); !rep.OK() {
		t.Fatalf("setup: the rolled-back log should verify on its own: %v", rep)
	}
	if err := l.CheckAnchor(ctx, a); !errors.Is(err, ErrAnchor) {
		t.Fatalf("rollback not found: %v", err)
	}
	if _, err := ParseAnchor("5:abc"); err == nil {
		t.Fatal("bad anchor parsed")
	}
}
