package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/hub"
	"github.com/shanghai-mca/mzhub/security/mask"
	"github.com/shanghai-mca/mzhub/services/disbursement"
)

// TestMain lets tests re-execute this test binary as the real mzhub binary
// (MZHUB_TEST_AS_MAIN=1), so signal handling is tested on a real process.
func TestMain(m *testing.M) {
	if os.Getenv("MZHUB_TEST_AS_MAIN") == "1" {
		os.Args = append([]string{"mzhub"}, strings.Fields(os.Getenv("MZHUB_TEST_ARGS"))...)
		main()
		return
	}
	os.Exit(m.Run())
}

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb syncBuffer // the logger and the progress bar both write stderr, from several goroutines
	env := &cliEnv{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }, Logger: hub.NewLogger(&errb, "info", "text")}
	code := dispatch(context.Background(), env, args)
	return code, out.String(), errb.String()
}

func TestHelpOnEveryCommand(t *testing.T) {
	for name := range commands {
		t.Run(name, func(t *testing.T) {
			code, _, stderr := runCLI(t, name, "--help")
			if code != 0 {
				t.Fatalf("%s --help exited %d", name, code)
			}
			if !strings.Contains(stderr, "Usage") && !strings.Contains(stderr, "usage") && !strings.Contains(stderr, "-") {
				t.Fatalf("%s --help printed no usage: %q", name, stderr)
			}
		})
	}
	if code, _, _ := runCLI(t, "no-such-command"); code != 2 {
		t.Fatalf("unknown command exited %d, want 2", code)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "version")
	if code != 0 || !strings.Contains(out, "go:") || !strings.Contains(out, "platform:") || !strings.Contains(out, "commit:") || !strings.Contains(out, "build:    "+hub.Flavour+" (") {
		t.Fatalf("version = %d %q", code, out)
	}
}

func TestLintShippedConfigs(t *testing.T) {
	code, out, stderr := runCLI(t, "lint", "../../configs")
	if code != 0 {
		t.Fatalf("lint configs/ exited %d:\n%s%s", code, out, stderr)
	}
}

func TestLintBrokenFileNamesFileLineAndProblem(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "hub.yaml")
	if err := os.WriteFile(bad, []byte("profile: embedded\nhttp:\n  listen: 127.0.0.1:1\nstore:\n  drivr: sqlite\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(dir, "broken.yml")
	if err := os.WriteFile(broken, []byte("a: [1, 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCLI(t, "lint", dir)
	if code != 1 {
		t.Fatalf("lint exited %d, want 1", code)
	}
	for _, want := range []string{bad + ":5:", "drivr", broken + ":"} {
		if !strings.Contains(out, want) {
			t.Errorf("lint output lacks %q:\n%s", want, out)
		}
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestServeAnswersAndStopsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	addr, maddr := freePort(t), freePort(t)
	cfg := filepath.Join(dir, "mzhub.yaml")
	body := fmt.Sprintf("profile: embedded\ndata_dir: %s\nlog:\n  format: json\nhttp:\n  listen: %s\n  metrics_listen: %s\n  shutdown_timeout: 5s\nstore:\n  path: %s\nmonitor:\n  sqlite_path: %s\nsecurity:\n  key_dir: %s\npaths:\n  partners: %s\n  routes: %s\n  mappings: %s\n",
		dir, addr, maddr, filepath.Join(dir, "state.db"), filepath.Join(dir, "monitor.db"), filepath.Join(dir, "keys"),
		"../../configs/partners", "../../configs/routes", "../../configs/mappings")
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "MZHUB_TEST_AS_MAIN=1", "MZHUB_TEST_ARGS=serve --config "+cfg)
	// Stderr goes to a buffer that Wait fills completely before it returns
	// (a pipe read beside Wait could lose the last lines: Wait closes it).
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	werr := make(chan error, 1)
	go func() { werr <- cmd.Wait() }()
	// The hub logs once it has started every component: it is ready then.
	awaitLog(t, &stderr, `"msg":"components started"`, 30*time.Second, werr)
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("readyz %d once the components started: %s\n%s", resp.StatusCode, b, stderr.String())
	}
	for _, u := range []string{"http://" + addr + "/healthz", "http://" + maddr + "/metrics"} {
		resp, err := http.Get(u)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %v %v", u, resp, err)
		}
		resp.Body.Close()
	}
	t0 := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-werr:
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM:\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop within 10s of SIGTERM")
	}
	out := stderr.String()
	if !strings.Contains(out, `"msg":"stopped"`) {
		t.Fatalf("no clean stop in logs:\n%s", out)
	}
	t.Logf("stopped %s after SIGTERM", time.Since(t0).Round(time.Millisecond))
}

// TestDemoRunsRealFlowsAndLogsNoIdentifiers runs `mzhub demo` as a child
// process: the allowance cycle must finish against the bank simulators, the
// funeral simulators' pushes must be accepted, and no log line may carry a
// whole resident ID or account number from the synthetic data.
func TestDemoRunsRealFlowsAndLogsNoIdentifiers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process running the demo")
	}
	// From the source tree (configs/ on disk, the README's quick start)
	// and from elsewhere (an installed binary: the shipped files embedded).
	for _, tc := range []struct{ name, wd string }{{"source tree", "../.."}, {"elsewhere", ""}} {
		t.Run(tc.name, func(t *testing.T) { testDemo(t, tc.wd) })
	}
}

func testDemo(t *testing.T, wd string) {
	if wd == "" {
		wd = t.TempDir()
	}
	dir := t.TempDir()
	addr := freePort(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Dir = wd
	// --for bounds the child; the test stops it with SIGTERM as soon as the
	// allowance cycle has finished (slow machines and -race take longer).
	cmd.Env = append(os.Environ(), "MZHUB_TEST_AS_MAIN=1", "MZHUB_TEST_ARGS=demo --for 300s --listen "+addr+" --data "+dir)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	started := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// While it runs, the partner API must refuse unsigned calls with
	// problem+json: asked once the hub has started its components.
	awaitLog(t, &stderr, `"msg":"components started"`, 60*time.Second, done)
	resp, err := http.Get("http://" + addr + "/partner/v1/halls")
	if err != nil {
		t.Fatalf("the partner API did not answer while the demo ran: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("Content-Type"), "application/problem+json") || !strings.Contains(string(b), `"code":"signature_missing"`) {
		t.Errorf("unsigned partner call: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	// The month's cycle runs to its end, and the funeral simulators push
	// their first round (both logged); then the demo is stopped.
	// Both run side by side from the start; one budget bounds them. (Under
	// -race on a loaded machine the state store's write gate answers some
	// partner calls 503 busy, which the simulators retry: the funeral round
	// has finished up to two minutes after the cycle.)
	budget := time.Until(started.Add(270 * time.Second))
	awaitLog(t, &stderr, `"msg":"demo allowance cycle finished"`, budget, done)
	awaitLog(t, &stderr, `"msg":"funeral demo: first round pushed"`, time.Until(started.Add(270*time.Second)), done)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("demo exited with %v:\n%s", err, tail(stderr.String(), 40))
		}
	case <-time.After(60 * time.Second):
		t.Fatal("demo did not stop after SIGTERM")
	}
	logs := stderr.String()
	// The simulated funeral platform read the changes the funeral service
	// relayed to funeral.changes (its external reader in topics.yaml).
	for _, want := range []string{`"msg":"demo allowance cycle finished"`, `"status":"done"`, `"msg":"simulated funeral platform reads funeral.changes"`} {
		if !strings.Contains(logs, want) {
			t.Errorf("demo logs lack %s:\n%s", want, tail(logs, 40))
		}
	}
	if shipped := strings.Contains(logs, "shipped in the binary"); shipped != (wd != "../..") {
		t.Errorf("used the files shipped in the binary: %v, running in %s", shipped, wd)
	}
	if !strings.Contains(stdout.String(), "console:") || !strings.Contains(stdout.String(), "demo-ops") {
		t.Errorf("demo banner lacks the console address and login:\n%s", stdout.String())
	}
	findings, err := mask.ScanReader(strings.NewReader(logs))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range findings {
		t.Errorf("unmasked identifier in demo logs: %+v", f)
	}
	// The synthetic list the demo paid: none of its ID or account numbers
	// may appear whole in the logs.
	// The closed batch keeps its list sealed only (docs/disbursement.md,
	// "Retention"); the list is the demo's generated one, made again here.
	lists, _ := filepath.Glob(filepath.Join(dir, "disbursement", "disbursement-*", "list.csv.sealed"))
	if len(lists) == 0 {
		t.Fatal("demo left no sealed payment list")
	}
	if plain, _ := filepath.Glob(filepath.Join(dir, "disbursement", "disbursement-*", "list.csv")); len(plain) > 0 {
		t.Fatalf("the closed batch keeps its list in plaintext: %v", plain)
	}
	var list bytes.Buffer
	period := strings.TrimPrefix(filepath.Base(filepath.Dir(lists[0])), "disbursement-")
	if err := disbursement.WriteList(&list, disbursement.GenerateOptions{Persons: hub.DemoPersons, Seed: 1, Period: period, Anomalies: true}); err != nil {
		t.Fatal(err)
	}
	data := list.Bytes()
	checked := 0
	for _, line := range strings.Split(string(data), "\n")[1:] {
		for _, field := range strings.Split(line, ",") {
			if len(field) >= 15 && strings.Trim(field, "0123456789X") == "" {
				checked++
				if strings.Contains(logs, field) {
					t.Fatalf("demo logs contain a whole identifier from the payment list (…%s)", field[len(field)-4:])
				}
			}
		}
	}
	if checked < 1000 {
		t.Fatalf("checked only %d identifiers from the payment list; is the list format different?", checked)
	}
	if wd == "../.." { // once: the whole state a demo leaves through a key rotation
		demoKeysRetire(t, dir)
	} else { // once: a second demo on the same data directory starts
		demoAgain(t, wd, dir)
	}
}

// demoAgain runs `mzhub demo` again on the data directory of an earlier
// run: it starts (the operator of the earlier run is kept; its one-time
// password, never used, is replaced and printed) and stops cleanly.
func demoAgain(t *testing.T, wd, dir string) {
	addr := freePort(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Dir = wd
	cmd.Env = append(os.Environ(), "MZHUB_TEST_AS_MAIN=1", "MZHUB_TEST_ARGS=demo --for 240s --listen "+addr+" --data "+dir)
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	awaitLog(t, &stdout, "(user demo-ops, one-time password ", 120*time.Second, done)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the second demo on %s exited with %v:\n%s", dir, err, tail(stderr.String(), 40))
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the second demo did not stop after SIGTERM")
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// syncBuffer is a bytes.Buffer safe for a child's output and a reader; a
// reader waiting for a line is woken by each write (written).
type syncBuffer struct {
	mu   sync.Mutex
	b    bytes.Buffer
	more chan struct{} // closed by the next write
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.more != nil {
		close(s.more)
		s.more = nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// written tells whether the output holds sub, and returns a channel closed
// by the next write.
func (s *syncBuffer) written(sub string) (bool, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.more == nil {
		s.more = make(chan struct{})
	}
	return strings.Contains(s.b.String(), sub), s.more
}

// awaitLog waits until a child's output holds sub, looking again on each
// write. It fails the test when the child exits first (exited receives its
// Wait error) or after within, a bound for a broken child.
func awaitLog(t *testing.T, out *syncBuffer, sub string, within time.Duration, exited <-chan error) {
	t.Helper()
	late := time.After(within)
	for {
		ok, more := out.written(sub)
		if ok {
			return
		}
		select {
		case <-more:
		case err := <-exited:
			t.Fatalf("the child exited (%v) before logging %s:\n%s", err, sub, tail(out.String(), 40))
		case <-late:
			t.Fatalf("the child did not log %s within %s:\n%s", sub, within, tail(out.String(), 40))
		}
	}
}
