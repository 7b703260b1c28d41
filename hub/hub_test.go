package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/hub"
)

func testConfig(t *testing.T) config.Config {
	cfg := config.Default()
	dir := t.TempDir()
	cfg.DataDir = dir
	cfg.Store.Path = filepath.Join(dir, "state.db")
	cfg.Monitor.SQLitePath = filepath.Join(dir, "monitor.db")
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.HTTP.MetricsListen = "127.0.0.1:0"
	cfg.HTTP.ShutdownTimeout = 3 * time.Second
	return cfg
}

// start runs a hub until the test ends and returns once it listens and has
// started its components (Started).
func start(t *testing.T, cfg config.Config, setup func(h *hub.Hub)) (string, context.CancelFunc, chan error) {
	t.Helper()
	return startLogged(t, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), setup)
}

// startLogged is start with the hub's logger.
func startLogged(t *testing.T, cfg config.Config, log *slog.Logger, setup func(h *hub.Hub)) (string, context.CancelFunc, chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h, err := hub.New(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(h)
	}
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() { done <- h.Run(ctx); close(finished) }()
	actx, acancel := context.WithTimeout(ctx, 5*time.Second)
	defer acancel()
	addr, err := h.Addr(actx)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-h.Started():
	case <-actx.Done():
		t.Fatal("the hub did not start its components")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			t.Error("hub did not stop")
		}
	})
	return "http://" + addr, cancel, done
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// logWatch is a slog handler that closes a channel when a message is
// logged: a test waits on what the hub says it did.
type logWatch struct {
	mu    sync.Mutex
	seen  map[string]chan struct{}
	attrs []slog.Attr
}

func newLogWatch() *logWatch { return &logWatch{seen: map[string]chan struct{}{}} }

// logged returns a channel closed once msg was logged (before or after).
func (w *logWatch) logged(msg string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch := w.seen[msg]
	if ch == nil {
		ch = make(chan struct{})
		w.seen[msg] = ch
	}
	return ch
}

func (w *logWatch) Enabled(context.Context, slog.Level) bool { return true }

func (w *logWatch) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch := w.seen[r.Message]
	if ch == nil {
		ch = make(chan struct{})
		w.seen[r.Message] = ch
	}
	select {
	case <-ch:
	default:
		close(ch)
	}
	return nil
}

func (w *logWatch) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *logWatch) WithGroup(string) slog.Handler      { return w }

func TestEndpoints(t *testing.T) {
	var hb *hub.Hub
	base, _, _ := start(t, testConfig(t), func(h *hub.Hub) {
		hb = h
		h.AddComponent("idle", hub.ComponentFunc(func(ctx context.Context) error { <-ctx.Done(); return nil }))
	})
	code, body := get(t, base+"/healthz")
	if code != 200 || !strings.Contains(body, `"status":"ok"`) {
		t.Fatalf("healthz = %d %s", code, body)
	}
	code, body = get(t, base+"/readyz") // components started: ready
	if code != 200 {
		t.Fatalf("readyz = %d %s once the components started", code, body)
	}
	var r struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Status != "ready" || r.Checks["store"] != "ok" {
		t.Fatalf("readyz = %s (%v)", body, err)
	}
	// /metrics is on its own listener (http.metrics_listen), not on the API's.
	maddr, err := hb.MetricsAddr(context.Background())
	if err != nil || maddr == "" {
		t.Fatalf("metrics address %q %v", maddr, err)
	}
	code, body = get(t, "http://"+maddr+"/metrics")
	if code != 200 || !strings.Contains(body, "mzhub_build_info") || !strings.Contains(body, `mzhub_component_up{component="idle"} 1`) {
		t.Fatalf("metrics = %d, missing mzhub metrics:\n%s", code, body)
	}
	if code, _ := get(t, base+"/metrics"); code != http.StatusNotFound {
		t.Fatalf("/metrics on the API listener: %d, want 404", code)
	}
}

func TestReadyzReportsFailingCheck(t *testing.T) {
	base, _, _ := start(t, testConfig(t), func(h *hub.Hub) {
		h.AddCheck("bank.boc", func(context.Context) error { return errors.New("sftp 127.0.0.1:2222: connection refused") })
	})
	code, body := get(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "connection refused") {
		t.Fatalf("readyz = %d %s, want 503 with the reason", code, body)
	}
}

func TestGracefulShutdownLetsInFlightFinish(t *testing.T) {
	// The slow request holds until the hub has begun shutting down: it is
	// in flight when the listener closes, and must still be answered.
	started, release := make(chan struct{}), make(chan struct{})
	logs := newLogWatch()
	base, cancel, done := startLogged(t, testConfig(t), slog.New(logs), func(h *hub.Hub) {
		h.Handle("GET /slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(started)
			<-release
			_, _ = io.WriteString(w, "finished")
		}))
	})
	go func() {
		<-logs.logged("shutting down")
		close(release)
	}()
	result := make(chan string, 1)
	go func() {
		resp, err := http.Get(base + "/slow")
		if err != nil {
			result <- "error: " + err.Error()
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		result <- string(b)
	}()
	<-started
	cancel()
	if got := <-result; got != "finished" {
		t.Fatalf("in-flight request got %q, want it to finish", got)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("hub did not stop within the deadline")
	}
}

func TestShutdownDeadlineBoundsStuckComponent(t *testing.T) {
	cfg := testConfig(t)
	cfg.HTTP.ShutdownTimeout = 200 * time.Millisecond
	release := make(chan struct{})
	defer close(release)
	_, cancel, done := start(t, cfg, func(h *hub.Hub) {
		h.AddComponent("stuck", hub.ComponentFunc(func(ctx context.Context) error { <-release; return nil }))
	})
	t0 := time.Now() // the stuck component is running (start waited for it)
	cancel()
	select {
	case <-done:
		if el := time.Since(t0); el > 2*time.Second {
			t.Fatalf("shutdown took %s", el)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a stuck component blocked shutdown past the deadline")
	}
}

func TestComponentFailureStopsHub(t *testing.T) {
	_, _, done := start(t, testConfig(t), func(h *hub.Hub) {
		h.AddComponent("broken", hub.ComponentFunc(func(ctx context.Context) error { return errors.New("boom") }))
	})
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "broken") {
			t.Fatalf("Run = %v, want the component's error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("hub kept running after a component failed")
	}
}

func TestLoggerMasksIdentifiers(t *testing.T) {
	for _, format := range []string{"json", "text"} {
		var b strings.Builder
		log := hub.NewLogger(&b, "info", format)
		log.Info("payment failed for 310101199003071238", "person_id", "310101199003071238", "account", "6222021234567890123", "err", errors.New("account 6222021234567890123 closed"))
		out := b.String()
		for _, raw := range []string{"310101199003071238", "6222021234567890123"} {
			if strings.Contains(out, raw) {
				t.Fatalf("%s log contains %s:\n%s", format, raw, out)
			}
		}
		if !strings.Contains(out, "7890123") && !strings.Contains(out, "0123") {
			t.Fatalf("%s log lost the last digits entirely:\n%s", format, out)
		}
	}
}
