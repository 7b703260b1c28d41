// Package hubtest starts a whole hub in-process for tests, the way
// mzhub serve runs it: on temporary directories, on a free loopback port,
// with every component of hub.Build. It blank-imports the built-in
// connectors (as cmd/mzhub does) so that routes find their kinds.
package hubtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/config"
	_ "github.com/shanghai-mca/mzhub/connectors/all" // the kinds shipped routes use
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/bank/banksim"
	"github.com/shanghai-mca/mzhub/hub"
	"github.com/shanghai-mca/mzhub/security/accounts"
)

// Options adjust the hub a test starts.
type Options struct {
	// Hub is passed to hub.Build (Demo, Banks).
	Hub hub.Options
	// Configure, when set, edits the configuration before the hub is built
	// (the embedded profile with every file under the test's directory).
	Configure func(*config.Config)
	// Dir is the data directory (default t.TempDir()).
	Dir string
	// Log, when set, also receives the hub's log lines (warn and above);
	// it must be safe for concurrent writes.
	Log io.Writer
}

// Server is one running hub.
type Server struct {
	// Hub is the running hub: its parts (Disbursement, Monitor, Security…).
	Hub *hub.Hub
	// URL is the listener's base URL, "http://127.0.0.1:PORT".
	URL string
	// Dir is the data directory.
	Dir string

	cancel context.CancelFunc
	done   chan error
}

// Start builds and runs a hub, waits until /readyz answers 200 and stops it
// when the test ends (failing the test if it stopped with an error).
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	dir := o.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	cfg, _, err := hub.DemoConfig(dir, "127.0.0.1:0", func(string) string { return "" })
	if err != nil {
		t.Fatalf("hubtest: config: %v", err)
	}
	cfg.Node = "hubtest"
	cfg.Log.Level = "warn"
	if o.Configure != nil {
		o.Configure(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var logw io.Writer = testWriter{t}
	if o.Log != nil {
		logw = io.MultiWriter(logw, o.Log)
	}
	h, err := hub.Build(ctx, cfg, hub.NewLogger(logw, cfg.Log.Level, "text"), o.Hub)
	if err != nil {
		cancel()
		t.Fatalf("hubtest: build: %v", err)
	}
	s := &Server{Hub: h, Dir: dir, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- h.Run(ctx) }()
	t.Cleanup(s.stop(t))
	actx, acancel := context.WithTimeout(ctx, 30*time.Second)
	defer acancel()
	addr, err := h.Addr(actx)
	if err != nil {
		t.Fatalf("hubtest: the hub did not listen: %v", err)
	}
	s.URL = "http://" + addr
	if err := s.waitReady(actx); err != nil {
		t.Fatalf("hubtest: %v", err)
	}
	return s
}

func (s *Server) stop(t testing.TB) func() {
	return func() {
		s.cancel()
		if err := <-s.done; err != nil {
			t.Errorf("hubtest: the hub stopped with an error: %v", err)
		}
	}
}

// waitReady waits until the hub has started its components (Started),
// then checks that /readyz answers 200 (every check passing).
func (s *Server) waitReady(ctx context.Context) error {
	select {
	case <-s.Hub.Started():
	case <-ctx.Done():
		return errors.New("the hub did not start its components")
	}
	resp, err := http.Get(s.URL + "/readyz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready once its components started: %d %s", resp.StatusCode, b)
	}
	return nil
}

// Console creates a console account with role, logs it in, sets its
// password (the one-time password must be changed at first login) and
// returns a client holding its session and CSRF token.
func (s *Server) Console(t testing.TB, username string, role accounts.Role) *Client {
	t.Helper()
	ctx := context.Background()
	otp, err := s.Hub.Security().Accounts.CreateUser(ctx, accounts.Actor{Name: "system:hubtest"}, username, username, role)
	if err != nil {
		t.Fatalf("hubtest: create %s: %v", username, err)
	}
	jar, _ := cookiejar.New(nil)
	c := &Client{t: t, base: s.URL, c: &http.Client{Jar: jar}}
	resp, out := c.Do("POST", "/console/auth/login", map[string]string{"username": username, "password": otp})
	if resp != http.StatusOK {
		t.Fatalf("hubtest: login %s: %d %v", username, resp, out)
	}
	if code, out := c.Do("POST", "/console/auth/password", map[string]string{"old_password": otp, "new_password": "Hub-test-Pass-9x"}); code != http.StatusOK && code != http.StatusNoContent {
		t.Fatalf("hubtest: password %s: %d %v", username, code, out)
	}
	return c
}

// Client is a console user's browser-like client.
type Client struct {
	t    testing.TB
	base string
	c    *http.Client
	csrf string
}

// busyBudget bounds how long Do keeps retrying busy answers.
const busyBudget = 4 * time.Minute

// Do sends a JSON request (body nil for none) with the session cookie and
// the CSRF token, and returns the status and the decoded JSON answer. A busy
// answer (503, problem code unavailable, with Retry-After: the console's
// back pressure when the state store's write lock is saturated, e.g. by a
// demo month under the race detector) is retried after Retry-After, as a
// user would, for up to busyBudget; the action was not done.
func (c *Client) Do(method, path string, body any) (int, map[string]any) {
	c.t.Helper()
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			c.t.Fatal(err)
		}
	}
	deadline := time.Now().Add(busyBudget)
	for {
		code, out, retry := c.do(method, path, b)
		if code != http.StatusServiceUnavailable || out["code"] != "unavailable" || retry <= 0 || time.Now().Add(retry).After(deadline) {
			return code, out
		}
		time.Sleep(retry)
	}
}

// do sends one request (body b, nil for none); retry is the answer's
// Retry-After (0 without).
func (c *Client) do(method, path string, b []byte) (int, map[string]any, time.Duration) {
	c.t.Helper()
	var rd io.Reader
	if b != nil {
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if b != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set(accounts.CSRFHeader, c.csrf)
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	// The session cookie is Secure; over plain loopback HTTP the jar would
	// not send it back, so keep it by hand.
	for _, ck := range resp.Cookies() {
		if ck.Name == accounts.CookieName {
			u, _ := url.Parse(c.base)
			c.c.Jar.SetCookies(u, []*http.Cookie{{Name: ck.Name, Value: ck.Value, Path: "/"}})
		}
	}
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if tok, ok := out["csrf_token"].(string); ok {
		c.csrf = tok
	}
	var retry time.Duration
	if sec, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && sec > 0 {
		retry = time.Duration(sec) * time.Second
	}
	return resp.StatusCode, out, retry
}

// Page gets an HTML page of the console as a browser does and returns the
// status and the body.
func (c *Client) Page(path string) (int, string) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.base+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/html")
	code, body, _ := c.browse(req)
	return code, body
}

// Form posts an HTML form as a browser does: the session cookie and the
// fields as given (a console form carries its page's csrf_token field; the
// header is not set). Redirects are not followed: it returns the status,
// the body and the Location header.
func (c *Client) Form(path string, form url.Values) (int, string, string) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(form.Encode()))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	return c.browse(req)
}

func (c *Client) browse(req *http.Request) (int, string, string) {
	hc := *c.c
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header.Get("Location")
}

// testWriter sends the hub's log to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// StartBanks starts the six simulated banks (in-process SFTP servers, fast
// returns) under dir with the shipped mappings at mappingsDir, stops them
// when the test ends, and returns them; hub.Options.Banks takes their
// Configs.
func StartBanks(t testing.TB, dir, mappingsDir string) []*banksim.Bank {
	t.Helper()
	opts := banksim.DefaultOptions()
	opts.ReturnDelay = 20 * time.Millisecond
	sims, err := banksim.StartAllWith(context.Background(), dir, os.DirFS(mappingsDir), opts)
	if err != nil {
		t.Fatalf("hubtest: bank simulators: %v", err)
	}
	t.Cleanup(func() {
		for _, s := range sims {
			_ = s.Close()
		}
	})
	return sims
}

// BankConfigs are the hub-side configurations of sims.
func BankConfigs(sims []*banksim.Bank) []bank.Config {
	out := make([]bank.Config, 0, len(sims))
	for _, s := range sims {
		out = append(out, s.Config)
	}
	return out
}
