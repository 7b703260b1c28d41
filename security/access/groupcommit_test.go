package access

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/security"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/security/sign"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// gate holds the committer once it has taken a batch's first call, until
// the test opens it, so that what the test queues meanwhile is one batch.
type gate struct {
	once    sync.Once
	taken   chan struct{}
	release chan struct{}
}

func hold(g *GroupCommit) *gate {
	gt := &gate{taken: make(chan struct{}), release: make(chan struct{})}
	g.beforeBatch = func() {
		gt.once.Do(func() {
			close(gt.taken)
			<-gt.release
		})
	}
	return gt
}

// queued waits until n calls sit in the queue (a signal, not a time).
func queued(t *testing.T, g *GroupCommit, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for len(g.q) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued, want %d", len(g.q), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func openGroupCommit(t *testing.T, db *store.DB, o GroupCommitOptions) (*GroupCommit, *audit.Log) {
	t.Helper()
	ctx := context.Background()
	log, err := audit.Open(ctx, db, []byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	if o.MaxWait == 0 {
		o.MaxWait = time.Minute // the tests wait on signals, never on this
	}
	g, err := NewGroupCommit(ctx, db, log, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close(context.Background()) })
	return g, log
}

// TestGroupCommitOneBatch: many concurrent calls (nonces and audit
// records) are written in one transaction, and none of them is answered
// before that transaction commits; the chain verifies.
func TestGroupCommitOneBatch(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		g, log := openGroupCommit(t, db, GroupCommitOptions{})
		gt := hold(g)
		var answered atomic.Int64
		var mu sync.Mutex
		var sizes []int
		g.inTx = func(n int) error {
			mu.Lock()
			defer mu.Unlock()
			prev := 0
			for _, s := range sizes {
				prev += s
			}
			if got := answered.Load(); got != int64(prev) {
				t.Errorf("batch of %d: %d calls answered before it committed, want %d", n, got, prev)
			}
			sizes = append(sizes, n)
			return nil
		}
		const n = 50
		var wg sync.WaitGroup
		errs := make(chan error, n)
		call := func(i int) {
			defer wg.Done()
			defer answered.Add(1)
			if i%2 == 0 {
				fresh, err := g.Use(ctx, "k1", fmt.Sprintf("nonce-%d", i), t0, t0.Add(10*time.Minute))
				if err == nil && !fresh {
					err = fmt.Errorf("nonce %d not fresh", i)
				}
				errs <- err
				return
			}
			_, err := g.Append(ctx, audit.Record{Actor: "partner:p", Action: "partner_api.call", Object: "POST /routes/x", Outcome: audit.OutcomeSuccess, RequestID: fmt.Sprint(i)})
			errs <- err
		}
		wg.Add(1)
		go call(0)
		<-gt.taken
		for i := 1; i < n; i++ {
			wg.Add(1)
			go call(i)
		}
		queued(t, g, n-1)
		close(gt.release)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if fmt.Sprint(sizes) != fmt.Sprint([]int{n}) {
			t.Fatalf("batches %v, want one of %d", sizes, n)
		}
		es, err := log.List(ctx, audit.Filter{Limit: 1000})
		if err != nil || len(es) != n/2 {
			t.Fatalf("audit entries %d %v, want %d", len(es), err, n/2)
		}
		if rep, err := log.Verify(ctx); err != nil || !rep.OK() {
			t.Fatalf("verify %+v %v", rep, err)
		}
	})
}

// TestGroupCommitReplayWithinBatch: a nonce sent twice in one batch is
// fresh once; a second replica on the same database refuses it too.
func TestGroupCommitReplayWithinBatch(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		g, _ := openGroupCommit(t, db, GroupCommitOptions{})
		gt := hold(g)
		exp := t0.Add(10 * time.Minute)
		results := make(chan bool, 3)
		use := func(nonce string) {
			fresh, err := g.Use(ctx, "k1", nonce, t0, exp)
			if err != nil {
				t.Error(err)
			}
			results <- fresh
		}
		go use("first")
		<-gt.taken
		go use("same")
		go use("same")
		queued(t, g, 2)
		close(gt.release)
		fresh := 0
		for range 3 {
			if <-results {
				fresh++
			}
		}
		if fresh != 2 { // "first" and one of the two "same"
			t.Fatalf("%d fresh, want 2 (a replay within the batch was accepted or a fresh nonce refused)", fresh)
		}
		other, _ := openGroupCommit(t, db, GroupCommitOptions{})
		if ok, err := other.Use(ctx, "k1", "same", t0.Add(time.Minute), exp); err != nil || ok {
			t.Fatalf("second replica: fresh=%v err=%v, want a replay", ok, err)
		}
		if ok, err := other.Use(ctx, "k1", "same", t0.Add(11*time.Minute), t0.Add(21*time.Minute)); err != nil || !ok {
			t.Fatalf("expired nonce: fresh=%v err=%v, want fresh", ok, err)
		}
	})
}

// guardWith is a partner guard recording into g, with a handler that
// counts the calls it let through.
func guardWith(t *testing.T, g *GroupCommit) (http.Handler, *atomic.Int64) {
	t.Helper()
	return guardLogged(t, g, nil)
}

// guardLogged is guardWith with the guard's log going to logger.
func guardLogged(t *testing.T, g *GroupCommit, logger *slog.Logger) (http.Handler, *atomic.Int64) {
	t.Helper()
	var served atomic.Int64
	return guardOf(t, g, logger, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		w.WriteHeader(http.StatusAccepted)
	})), &served
}

// guardHandler is a partner guard recording into g in front of next.
func guardHandler(t *testing.T, g *GroupCommit, next http.Handler) http.Handler {
	t.Helper()
	return guardOf(t, g, nil, next)
}

func guardOf(t *testing.T, g *GroupCommit, logger *slog.Logger, next http.Handler) http.Handler {
	t.Helper()
	ctx := context.Background()
	kp := keys.NewFile(t.TempDir())
	if err := kp.Put(ctx, keys.PartnerPrefix+"fh-01-a", secret1); err != nil {
		t.Fatal(err)
	}
	cfg := security.DefaultConfig().PartnerAPI
	cfg.Partners = []security.PartnerAccess{{ID: "funeral-home-01", KeyIDs: []string{"fh-01-a"}, AllowCIDRs: []string{"0.0.0.0/0"}}}
	a, err := New(Options{Config: cfg, Keys: kp, Nonces: g, Audit: g, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return a.Middleware(next)
}

func signedCall(t *testing.T, h http.Handler) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/routes/x", strings.NewReader(`{"id":"1"}`))
	r.RemoteAddr = "10.1.2.3:40000"
	if err := sign.Sign(r, "fh-01-a", secret1); err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// wantBackPressure checks a 503 problem with Retry-After.
func wantBackPressure(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" ||
		!strings.HasPrefix(w.Header().Get("Content-Type"), "application/problem+json") {
		t.Fatalf("answer %d %v %s, want 503 problem+json with Retry-After", w.Code, w.Header(), w.Body)
	}
	var p struct{ Code string }
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Code != "unavailable" {
		t.Fatalf("problem code %q %v, want unavailable", p.Code, err)
	}
}

// TestGroupCommitFailureFailsTheBatch: when the transaction fails, every
// call of the batch is refused with 503 and Retry-After, none reaches the
// handler; the next batch commits again.
func TestGroupCommitFailureFailsTheBatch(t *testing.T) {
	db := storetest.Open(t)
	g, log := openGroupCommit(t, db, GroupCommitOptions{})
	h, served := guardWith(t, g)
	boom := errors.New("disk full")
	var fail atomic.Bool
	fail.Store(true)
	g.inTx = func(int) error {
		if fail.Load() {
			return boom
		}
		return nil
	}
	gt := hold(g)
	const n = 8
	answers := make(chan *httptest.ResponseRecorder, n)
	go func() { answers <- signedCall(t, h) }()
	<-gt.taken
	for range n - 1 {
		go func() { answers <- signedCall(t, h) }()
	}
	queued(t, g, n-1)
	close(gt.release)
	for range n {
		wantBackPressure(t, <-answers)
	}
	if served.Load() != 0 {
		t.Fatalf("%d calls reached the handler after a failed commit", served.Load())
	}
	fail.Store(false)
	if w := signedCall(t, h); w.Code != http.StatusAccepted {
		t.Fatalf("after recovery: %d %s", w.Code, w.Body)
	}
	if rep, err := log.Verify(context.Background()); err != nil || !rep.OK() {
		t.Fatalf("verify %+v %v", rep, err)
	}
}

// TestGroupCommitBackPressure: with the commit queue full, a call is
// answered 503 with Retry-After at once, not after a busy wait, and logged
// as a warning (back pressure), not as an error an operator must chase.
func TestGroupCommitBackPressure(t *testing.T) {
	db := storetest.Open(t)
	g, _ := openGroupCommit(t, db, GroupCommitOptions{QueueSize: 2})
	var logged syncBuffer
	h, served := guardLogged(t, g, slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug})))
	gt := hold(g)
	done := make(chan *httptest.ResponseRecorder, 3)
	go func() { done <- signedCall(t, h) }()
	<-gt.taken
	for range 2 {
		go func() { done <- signedCall(t, h) }()
	}
	queued(t, g, 2)
	wantBackPressure(t, signedCall(t, h)) // the committer is held: only a full queue can answer this
	close(gt.release)
	for range 3 {
		if w := <-done; w.Code != http.StatusAccepted {
			t.Fatalf("queued call: %d %s", w.Code, w.Body)
		}
	}
	if served.Load() != 3 {
		t.Fatalf("served %d, want 3", served.Load())
	}
	out := logged.String()
	if !strings.Contains(out, "level=WARN msg=\"partner API call held back: hub busy\"") || strings.Contains(out, "level=ERROR") {
		t.Fatalf("a busy answer is logged as a warning, never an error:\n%s", out)
	}
}

// syncBuffer is a bytes.Buffer safe for the guard's concurrent log writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestGroupCommitManyNonces: a batch of more nonces than one INSERT holds
// judges each exactly: new ones fresh, a repeat within the batch (across
// the statements' boundary) a replay, one recorded before and still valid
// a replay, one recorded before and expired fresh again.
func TestGroupCommitManyNonces(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		g, _ := openGroupCommit(t, db, GroupCommitOptions{})
		exp := t0.Add(10 * time.Minute)
		for _, n := range []string{"old-valid", "old-expired"} {
			e := exp
			if n == "old-expired" {
				e = t0.Add(-time.Second)
			}
			if ok, err := g.Use(ctx, "k1", n, t0.Add(-time.Hour), e); err != nil || !ok {
				t.Fatalf("recording %s: fresh=%v err=%v", n, ok, err)
			}
		}
		gt := hold(g)
		type answer struct {
			nonce string
			fresh bool
		}
		answers := make(chan answer, 400)
		use := func(key, nonce string) {
			fresh, err := g.Use(ctx, key, nonce, t0, exp)
			if err != nil {
				t.Error(err)
			}
			answers <- answer{key + "/" + nonce, fresh}
		}
		go use("k0", "first")
		<-gt.taken
		// Two keys, 2×nonceRowsPerInsert+5 distinct nonces, each of the
		// keys' last nonce sent twice, and the two recorded before.
		var calls []func()
		want := map[string]int{"k0/first": 1}
		for i := range nonceRowsPerInsert + 2 {
			for _, k := range []string{"k1", "k2"} {
				n := fmt.Sprintf("n%03d", i)
				calls = append(calls, func() { use(k, n) })
				want[k+"/"+n]++
			}
		}
		calls = append(calls, func() { use("k1", fmt.Sprintf("n%03d", nonceRowsPerInsert+1)) }, func() { use("k2", "n000") },
			func() { use("k1", "old-valid") }, func() { use("k1", "old-expired") })
		want[fmt.Sprintf("k1/n%03d", nonceRowsPerInsert+1)]++
		want["k2/n000"]++
		for _, c := range calls {
			go c()
		}
		queued(t, g, len(calls))
		close(gt.release)
		fresh := map[string]int{}
		got := map[string]int{}
		for range len(calls) + 1 {
			a := <-answers
			got[a.nonce]++
			if a.fresh {
				fresh[a.nonce]++
			}
		}
		if fresh["k1/old-valid"] != 0 || fresh["k1/old-expired"] != 1 {
			t.Fatalf("recorded before: valid fresh %d (want 0), expired fresh %d (want 1)", fresh["k1/old-valid"], fresh["k1/old-expired"])
		}
		for n, c := range want {
			if got[n] != c || fresh[n] != 1 {
				t.Fatalf("%s: %d answers, %d fresh; want %d answers, one fresh", n, got[n], fresh[n], c)
			}
		}
	})
}

// TestPartnerWritesAreUrgent: the handler behind the guard runs with an
// urgent context, and the guard's own commit goes ahead of the data
// writes queued at the state store's write gate: every one of them,
// queued before the call, finds its nonce already committed.
func TestPartnerWritesAreUrgent(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t)
	g, _ := openGroupCommit(t, db, GroupCommitOptions{})
	var urgent atomic.Bool
	h := guardHandler(t, g, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		urgent.Store(store.IsUrgent(r.Context()))
		w.WriteHeader(http.StatusAccepted)
	}))

	held, release := make(chan struct{}), make(chan struct{})
	go func() {
		_ = db.InTx(ctx, func(tx *sql.Tx) error {
			close(held)
			<-release
			return nil
		})
	}()
	<-held
	const queued = 3 // fewer than the urgent burst
	var wg sync.WaitGroup
	seen := make(chan int, queued)
	for i := range queued {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := db.InTx(ctx, func(tx *sql.Tx) error {
				var n int
				err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM partner_nonces`).Scan(&n)
				seen <- n
				return err
			})
			if err != nil {
				t.Error(err)
			}
		}()
		storetest.Until(t, fmt.Sprintf("data write %d queued", i), func() bool { _, _, d := db.WritesWaiting(); return d == i+1 })
	}
	answer := make(chan *httptest.ResponseRecorder, 1)
	go func() { answer <- signedCall(t, h) }()
	storetest.Until(t, "the guard's commit queued", func() bool { _, u, d := db.WritesWaiting(); return u+d == queued+1 })
	close(release)
	if w := <-answer; w.Code != http.StatusAccepted {
		t.Fatalf("signed call: %d %s", w.Code, w.Body)
	}
	wg.Wait()
	close(seen)
	for n := range seen {
		if n != 1 {
			t.Fatalf("a data write queued before the call ran before its nonce was committed (saw %d nonces)", n)
		}
	}
	if !urgent.Load() {
		t.Fatal("the handler's context is not urgent")
	}
}

// TestAuditAppendWaitsForRoom: with the commit queue full, a nonce is
// refused at once (back pressure) but an audit record of a call already
// decided waits for room and is written; the record of a busy answer
// (failFast) is refused at once.
func TestAuditAppendWaitsForRoom(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t)
	g, log := openGroupCommit(t, db, GroupCommitOptions{QueueSize: 1})
	gt := hold(g)
	released := false
	t.Cleanup(func() { // before Close: a failed check must not leave the committer held
		if !released {
			close(gt.release)
		}
	})
	first := make(chan error, 1)
	go func() { _, err := g.Use(ctx, "k1", "first", t0, t0.Add(time.Minute)); first <- err }()
	<-gt.taken
	queuedNonce := make(chan error, 1)
	go func() { _, err := g.Use(ctx, "k1", "second", t0, t0.Add(time.Minute)); queuedNonce <- err }()
	queued(t, g, 1)
	if _, err := g.Use(ctx, "k1", "third", t0, t0.Add(time.Minute)); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("nonce with the queue full: %v, want ErrOverloaded", err)
	}
	if _, err := g.Append(failFast(ctx), audit.Record{Actor: "partner:p", Action: "partner_api.call", Outcome: audit.OutcomeFailure}); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("busy answer's record with the queue full: %v, want ErrOverloaded", err)
	}
	waiting := make(chan struct{})
	g.waitsForRoom = func() { close(waiting) }
	appended := make(chan error, 1)
	go func() {
		_, err := g.Append(ctx, audit.Record{Actor: "partner:p", Action: "partner_api.call", Outcome: audit.OutcomeSuccess, RequestID: "waited"})
		appended <- err
	}()
	select {
	case err := <-appended:
		t.Fatalf("the audit record did not wait for room: %v", err)
	case <-waiting: // it waits; the release below lets it in
	}
	close(gt.release)
	released = true
	for _, ch := range []chan error{first, queuedNonce, appended} {
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
	}
	es, err := log.List(ctx, audit.Filter{Limit: 10})
	if err != nil || len(es) != 1 || es[0].RequestID != "waited" {
		t.Fatalf("audit entries %+v %v, want the one that waited", es, err)
	}
}
