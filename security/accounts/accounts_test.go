package accounts

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/security"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/audit/audittest"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

var t0 = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

func newManager(t *testing.T, db *store.DB) (*Manager, *clock.Fake, *audittest.Recorder) {
	t.Helper()
	fc := clock.NewFake(t0)
	fa := &audittest.Recorder{}
	m, err := New(context.Background(), db, security.DefaultConfig().Console, fa, WithClock(fc), WithIterations(1000))
	if err != nil {
		t.Fatal(err)
	}
	return m, fc, fa
}

var cli = Actor{Name: "cli:root"}

func TestPolicy(t *testing.T) {
	tests := []struct {
		pw   string
		ok   bool
		want string
	}{
		{"Abcdef1!", true, ""},
		{"abcdef12", false, "at least 3 of"},
		{"Abc1!", false, "at least 8"},
		{"ALICEpass1", false, "user name"},
		{"长城Abcdefg1", true, ""},
		{strings.Repeat("Aa1!", 40), false, "at most"},
	}
	for _, tt := range tests {
		err := CheckPolicy(tt.pw, "alice", 8, 3)
		if (err == nil) != tt.ok || (err != nil && (!errors.Is(err, ErrPolicy) || !strings.Contains(err.Error(), tt.want))) {
			t.Errorf("CheckPolicy(%q) = %v", tt.pw, err)
		}
	}
	for i := 0; i < 50; i++ {
		if err := CheckPolicy(oneTimePassword(), "", 12, 4); err != nil {
			t.Fatalf("one-time password breaks the policy: %v", err)
		}
	}
}

func TestHash(t *testing.T) {
	h, err := hashPassword("Secret-Pass1", 1000)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "pbkdf2-sm3$1000$") || strings.Contains(h, "Secret") {
		t.Fatalf("hash %s", h)
	}
	if ok, iter := checkPassword(h, "Secret-Pass1"); !ok || iter != 1000 {
		t.Fatal("right password refused")
	}
	for _, bad := range []string{"Secret-Pass2", "", "secret-pass1"} {
		if ok, _ := checkPassword(h, bad); ok {
			t.Fatalf("%q accepted", bad)
		}
	}
	h2, _ := hashPassword("Secret-Pass1", 1000)
	if h == h2 {
		t.Fatal("no salt")
	}
}

func TestLifecycle(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		m, fc, fa := newManager(t, db)
		otp, err := m.CreateUser(ctx, cli, "sec1", "安全管理员", RoleSecurityAdmin)
		if err != nil || len(otp) != 16 {
			t.Fatalf("create: %q %v", otp, err)
		}
		if _, err := m.CreateUser(ctx, cli, "sec1", "again", RoleAuditor); !errors.Is(err, ErrExists) {
			t.Fatalf("duplicate user: %v", err)
		}
		if _, err := m.CreateUser(ctx, cli, "Bad Name", "", RoleAuditor); !errors.Is(err, ErrUsername) {
			t.Fatalf("bad name: %v", err)
		}
		if _, err := m.CreateUser(ctx, cli, "x1y", "", Role("root")); !errors.Is(err, ErrRole) {
			t.Fatalf("bad role: %v", err)
		}

		// First login with the one-time password: the session is limited.
		s, err := m.Login(ctx, "sec1", otp, "10.0.0.5")
		if err != nil || !s.User.MustChange {
			t.Fatalf("login: %+v %v", s.User, err)
		}
		if err := m.ChangePassword(ctx, cli, "sec1", otp, "short", s.Token); !errors.Is(err, ErrPolicy) {
			t.Fatalf("weak password: %v", err)
		}
		if err := m.ChangePassword(ctx, cli, "sec1", "wrong", "Str0ng-Passw0rd", s.Token); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("wrong old password: %v", err)
		}
		if err := m.ChangePassword(ctx, cli, "sec1", otp, "Str0ng-Passw0rd", s.Token); err != nil {
			t.Fatal(err)
		}
		if u, _ := m.Get(ctx, "sec1"); u.MustChange {
			t.Fatal("one-time flag not cleared")
		}

		// Lockout: 5 failures lock for 10 minutes, even the right password is refused.
		for i := 1; i <= 5; i++ {
			_, err := m.Login(ctx, "sec1", "nope", "10.0.0.6")
			if i < 5 && !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("failure %d: %v", i, err)
			}
			if i == 5 && !errors.Is(err, ErrLocked) {
				t.Fatalf("failure 5 did not lock: %v", err)
			}
		}
		if _, err := m.Login(ctx, "sec1", "Str0ng-Passw0rd", "10.0.0.5"); !errors.Is(err, ErrLocked) {
			t.Fatalf("locked account let in: %v", err)
		}
		fc.Advance(10*time.Minute + time.Second)
		s, err = m.Login(ctx, "sec1", "Str0ng-Passw0rd", "10.0.0.5")
		if err != nil {
			t.Fatalf("after lockout: %v", err)
		}
		if !fa.Has("console.login", audit.OutcomeFailure, "locked") || !fa.Has("console.login", audit.OutcomeDenied, "account locked") {
			t.Fatal("lockout not audited")
		}

		// Idle timeout.
		if _, err := m.Authenticate(ctx, s.Token); err != nil {
			t.Fatal(err)
		}
		fc.Advance(14 * time.Minute)
		if _, err := m.Authenticate(ctx, s.Token); err != nil {
			t.Fatalf("within idle timeout: %v", err)
		}
		fc.Advance(16 * time.Minute)
		if _, err := m.Authenticate(ctx, s.Token); !errors.Is(err, ErrSession) {
			t.Fatalf("idle session survived: %v", err)
		}

		// Expiry: after 90 days the password must be changed.
		fc.Advance(91 * 24 * time.Hour)
		s, err = m.Login(ctx, "sec1", "Str0ng-Passw0rd", "10.0.0.5")
		if err != nil || !s.User.PasswordExpired {
			t.Fatalf("expired password: %+v %v", s.User, err)
		}

		// The last security admin cannot be disabled; others can, and their sessions end.
		if err := m.SetDisabled(ctx, cli, "sec1", true); !errors.Is(err, ErrLastSecurityAdmin) {
			t.Fatalf("disabled the last security admin: %v", err)
		}
		otp2, _ := m.CreateUser(ctx, cli, "op1", "", RoleOperator)
		s2, err := m.Login(ctx, "op1", otp2, "10.0.0.7")
		if err != nil {
			t.Fatal(err)
		}
		if err := m.SetDisabled(ctx, cli, "op1", true); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Authenticate(ctx, s2.Token); !errors.Is(err, ErrSession) {
			t.Fatal("disabled user's session survived")
		}
		if _, err := m.Login(ctx, "op1", otp2, "10.0.0.7"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("disabled user logged in: %v", err)
		}
		us, err := m.List(ctx)
		if err != nil || len(us) != 2 || us[0].Username != "op1" || !us[0].Disabled {
			t.Fatalf("list %+v %v", us, err)
		}
		if _, err := m.Login(ctx, "ghost", "whatever1A!", "1.2.3.4"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("unknown user: %v", err)
		}
	})
}

// client is a browser-like client of the account endpoints.
type client struct {
	t    *testing.T
	base string
	c    *http.Client
	csrf string
}

func (c *client) do(method, path string, body any, csrf bool) (*http.Response, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.base+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if csrf {
		req.Header.Set(CSRFHeader, c.csrf)
	}
	resp, err := c.c.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	if tok, ok := out["csrf_token"].(string); ok {
		c.csrf = tok
	}
	return resp, out
}

func TestHTTP(t *testing.T) {
	db := storetest.Open(t)
	ctx := context.Background()
	m, _, _ := newManager(t, db)
	otp, _ := m.CreateUser(ctx, cli, "sec1", "", RoleSecurityAdmin)

	mux := http.NewServeMux()
	mux.Handle("/console/auth/", http.StripPrefix("/console/auth", m.Handler()))
	mux.Handle("/console/audit", m.Middleware(m.RequireRole(RoleAuditor)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	c := &client{t: t, base: srv.URL + "/console/auth", c: &http.Client{Jar: jar}}

	if resp, _ := c.do("GET", "/session", nil, false); resp.StatusCode != 401 {
		t.Fatalf("no session: %d", resp.StatusCode)
	}
	resp, out := c.do("POST", "/login", map[string]string{"username": "sec1", "password": "wrong"}, false)
	if resp.StatusCode != 401 || out["code"] != "unauthenticated" {
		t.Fatalf("bad login: %d %v", resp.StatusCode, out)
	}
	resp, out = c.do("POST", "/login", map[string]string{"username": "sec1", "password": otp}, false)
	if resp.StatusCode != 200 || out["must_change_password"] != true {
		t.Fatalf("login: %d %v", resp.StatusCode, out)
	}
	ck := resp.Cookies()
	if len(ck) != 1 || !ck[0].HttpOnly || !ck[0].Secure || ck[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie %+v", ck)
	}
	// httptest is plain HTTP, so the jar keeps no Secure cookie: hand it over.
	u := srv.URL + "/console/"
	req, _ := http.NewRequest("GET", u, nil)
	jar.SetCookies(req.URL, []*http.Cookie{{Name: CookieName, Value: ck[0].Value, Path: "/"}})

	// Limited to changing the password.
	if resp, out := c.do("GET", "/users", nil, false); resp.StatusCode != 403 || out["code"] != "password_change_required" {
		t.Fatalf("limited session: %d %v", resp.StatusCode, out)
	}
	// CSRF is required on unsafe requests.
	if resp, out := c.do("POST", "/password", map[string]string{"old_password": otp, "new_password": "Str0ng-Passw0rd"}, false); resp.StatusCode != 403 || out["code"] != "csrf_failed" {
		t.Fatalf("no csrf: %d %v", resp.StatusCode, out)
	}
	if resp, out := c.do("POST", "/password", map[string]string{"old_password": otp, "new_password": "weakweak"}, true); resp.StatusCode != 422 || out["code"] != "password_policy" {
		t.Fatalf("weak: %d %v", resp.StatusCode, out)
	}
	if resp, _ := c.do("POST", "/password", map[string]string{"old_password": otp, "new_password": "Str0ng-Passw0rd"}, true); resp.StatusCode != 204 {
		t.Fatalf("change: %d", resp.StatusCode)
	}
	// Now a full security-admin session: create an auditor.
	resp, out = c.do("POST", "/users", map[string]string{"username": "aud1", "display_name": "审计员", "role": "auditor"}, true)
	if resp.StatusCode != 201 || out["one_time_password"] == "" {
		t.Fatalf("create: %d %v", resp.StatusCode, out)
	}
	if resp, out := c.do("POST", "/users", map[string]string{"username": "x", "role": "auditor", "extra": "1"}, true); resp.StatusCode != 400 || out["code"] != "unknown_field" {
		t.Fatalf("unknown field: %d %v", resp.StatusCode, out)
	}
	if resp, out := c.do("POST", "/users/aud1/reset-password", nil, true); resp.StatusCode != 200 || out["one_time_password"] == "" {
		t.Fatalf("reset: %d %v", resp.StatusCode, out)
	}
	if resp, _ := c.do("POST", "/users/sec1/disable", nil, true); resp.StatusCode != 409 {
		t.Fatalf("self-disable: %d", resp.StatusCode)
	}
	// A security admin is not an auditor: separation of duties.
	req, _ = http.NewRequest("GET", srv.URL+"/console/audit", nil)
	resp, err := c.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("security admin reached the auditor page: %d", resp.StatusCode)
	}
	if resp, _ := c.do("POST", "/logout", nil, true); resp.StatusCode != 204 {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp, _ := c.do("GET", "/session", nil, false); resp.StatusCode != 401 {
		t.Fatalf("after logout: %d", resp.StatusCode)
	}
}

func TestBrowserFlow(t *testing.T) {
	db := storetest.Open(t)
	ctx := context.Background()
	fa := &audittest.Recorder{}
	cfg := security.DefaultConfig().Console
	cfg.CookieSecure = false // plain-HTTP test server
	m, err := New(ctx, db, cfg, fa, WithIterations(1000), WithLoginPath("/console/auth/login"))
	if err != nil {
		t.Fatal(err)
	}
	otp, _ := m.CreateUser(ctx, cli, "op1", "", RoleOperator)
	mux := http.NewServeMux()
	mux.Handle("/console/auth/", http.StripPrefix("/console/auth", m.Handler()))
	mux.Handle("/console/", m.Guard(RoleOperator)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "hello "+RequestUser(r))
	})))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("Accept", "text/html")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	post := func(path string, form url.Values) (*http.Response, string) {
		resp, err := c.PostForm(srv.URL+path, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, _ := get("/console/"); resp.StatusCode != 303 || resp.Header.Get("Location") != "/console/auth/login" {
		t.Fatalf("no session: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, body := get("/console/auth/login"); resp.StatusCode != 200 || !strings.Contains(body, `name="password"`) {
		t.Fatalf("login page: %d", resp.StatusCode)
	}
	if resp, body := post("/console/auth/login", url.Values{"username": {"op1"}, "password": {"wrong"}}); resp.StatusCode != 401 || !strings.Contains(body, "wrong user name") {
		t.Fatalf("bad login: %d", resp.StatusCode)
	}
	if resp, _ := post("/console/auth/login", url.Values{"username": {"op1"}, "password": {otp}}); resp.StatusCode != 303 || resp.Header.Get("Location") != "password" {
		t.Fatalf("login: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, _ := get("/console/"); resp.StatusCode != 403 {
		t.Fatalf("before password change: %d", resp.StatusCode)
	}
	resp, body := get("/console/auth/password")
	csrf := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(body)
	if resp.StatusCode != 200 || csrf == nil {
		t.Fatalf("password page: %d %s", resp.StatusCode, body)
	}
	if resp, _ := post("/console/auth/password", url.Values{"old_password": {otp}, "new_password": {"N3w-Passw0rd"}}); resp.StatusCode != 403 {
		t.Fatalf("form without csrf: %d", resp.StatusCode)
	}
	if resp, _ := post("/console/auth/password", url.Values{"csrf_token": {csrf[1]}, "old_password": {otp}, "new_password": {"N3w-Passw0rd"}}); resp.StatusCode != 303 || resp.Header.Get("Location") != "/console/" {
		t.Fatalf("change: %d", resp.StatusCode)
	}
	if resp, body := get("/console/"); resp.StatusCode != 200 || body != "hello op1" {
		t.Fatalf("home: %d %s", resp.StatusCode, body)
	}
}

func TestPasswordHistory(t *testing.T) {
	ctx := context.Background()
	m, fc, _ := newManager(t, storetest.Open(t))
	otp, _ := m.CreateUser(ctx, cli, "op1", "", RoleOperator)
	pws := []string{otp, "Passw0rd-A1", "Passw0rd-B2", "Passw0rd-C3", "Passw0rd-D4", "Passw0rd-E5", "Passw0rd-F6"}
	for i := 1; i < len(pws); i++ {
		fc.Advance(time.Minute)
		if err := m.ChangePassword(ctx, cli, "op1", pws[i-1], pws[i], ""); err != nil {
			t.Fatalf("change %d: %v", i, err)
		}
	}
	// The last five (F6, the current one, and B2 … E5) are refused; A1 is old enough.
	for _, pw := range []string{"Passw0rd-B2", "Passw0rd-E5"} {
		if err := m.ChangePassword(ctx, cli, "op1", "Passw0rd-F6", pw, ""); !errors.Is(err, ErrPolicy) {
			t.Fatalf("reuse of %s: %v", pw, err)
		}
	}
	if err := m.ChangePassword(ctx, cli, "op1", "Passw0rd-F6", "Passw0rd-A1", ""); err != nil {
		t.Fatalf("old enough password: %v", err)
	}
}

func TestAddressThrottle(t *testing.T) {
	ctx := context.Background()
	m, fc, fa := newManager(t, storetest.Open(t))
	otp, _ := m.CreateUser(ctx, cli, "op1", "", RoleOperator)
	// Spraying: one guess per made-up account from one address.
	for i := 0; i < ipMaxFailures; i++ {
		if _, err := m.Login(ctx, fmt.Sprintf("user%02d", i), "Guess-1234", "203.0.113.9"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("guess %d: %v", i, err)
		}
	}
	if _, err := m.Login(ctx, "op1", otp, "203.0.113.9"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("after %d failures: %v", ipMaxFailures, err)
	}
	if _, err := m.Login(ctx, "op1", otp, "198.51.100.1"); err != nil {
		t.Fatalf("other address: %v", err)
	}
	fc.Advance(ipWindowLen)
	if _, err := m.Login(ctx, "op1", otp, "203.0.113.9"); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	if !fa.Has("console.login", audit.OutcomeDenied, "too many failures") {
		t.Fatal("throttle not audited")
	}
	if n := testutil.ToFloat64(m.logins.WithLabelValues("throttled")); n != 1 {
		t.Fatalf("throttled logins metric %v", n)
	}
	if n := testutil.ToFloat64(m.logins.WithLabelValues("unknown_user")); n != ipMaxFailures {
		t.Fatalf("unknown_user metric %v", n)
	}
}

// TestAddressThrottleWhateverTheName: empty and malformed user names count
// against the address too (they skipped the throttle before).
func TestAddressThrottleWhateverTheName(t *testing.T) {
	ctx := context.Background()
	m, _, _ := newManager(t, storetest.Open(t))
	otp, _ := m.CreateUser(ctx, cli, "op1", "", RoleOperator)
	for i := 0; i < ipMaxFailures; i++ {
		name := []string{"", " ", "x", "a/b", strings.Repeat("z", 40)}[i%5]
		if _, err := m.Login(ctx, name, "Guess-1234", "203.0.113.9"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("guess %d (%q): %v", i, name, err)
		}
	}
	if _, err := m.Login(ctx, "", "Guess-1234", "203.0.113.9"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("empty name after %d failures: %v", ipMaxFailures, err)
	}
	if _, err := m.Login(ctx, "op1", otp, "203.0.113.9"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("right password after %d failures from the address: %v", ipMaxFailures, err)
	}
}

// TestNoUserEnumeration: after the lockout limit an existing (now locked)
// account and an unknown name get the same status and body; so do a
// wrong password and a disabled account.
func TestNoUserEnumeration(t *testing.T) {
	db := storetest.Open(t)
	ctx := context.Background()
	m, _, fa := newManager(t, db)
	if _, err := m.CreateUser(ctx, cli, "op1", "", RoleOperator); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.StripPrefix("/console/auth", m.Handler()))
	defer srv.Close()
	login := func(name string) (int, string) {
		t.Helper()
		b, _ := json.Marshal(map[string]string{"username": name, "password": "Wrong-Passw0rd"})
		resp, err := http.Post(srv.URL+"/console/auth/login", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, fmt.Sprint(out["code"], out["detail"], out["title"])
	}
	var existing, unknown []string
	for i := 0; i < 7; i++ { // 5 lock the account, then 2 more while locked
		s1, b1 := login("op1")
		s2, b2 := login("nobody")
		existing = append(existing, fmt.Sprint(s1, b1))
		unknown = append(unknown, fmt.Sprint(s2, b2))
	}
	for i := range existing {
		if existing[i] != unknown[i] {
			t.Fatalf("attempt %d: existing user answered %q, unknown user %q", i+1, existing[i], unknown[i])
		}
	}
	if !fa.Has("console.login", audit.OutcomeDenied, "account locked") {
		t.Fatal("the lockout is not in the audit log")
	}
}

// TestLoginWhileTheStoreIsBusy: when the login cannot get its turn at the
// state store (another writer holds SQLite's write lock past the busy
// timeout), the login is refused with 503 and Retry-After — problem+json
// on the API, the login page with a "busy" message on the form — never a
// 500; once the store is free the same login succeeds.
func TestLoginWhileTheStoreIsBusy(t *testing.T) {
	cfg := store.DefaultConfig()
	cfg.Path = filepath.Join(t.TempDir(), "state.db")
	cfg.BusyTimeout = 200 * time.Millisecond
	db, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	m, _, _ := newManager(t, db)
	pw, err := m.CreateUser(ctx, cli, "op1", "", RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.StripPrefix("/console/auth", m.Handler()))
	defer srv.Close()
	apiLogin := func() (*http.Response, map[string]any) {
		b, _ := json.Marshal(map[string]string{"username": "op1", "password": pw})
		resp, err := http.Post(srv.URL+"/console/auth/login", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp, out
	}
	held, err := db.BeginWrite(ctx) // another writer holds the store
	if err != nil {
		t.Fatal(err)
	}
	resp, out := apiLogin()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || out["code"] != "unavailable" {
		t.Fatalf("API login answered %d %v (Retry-After %q), want 503 unavailable", resp.StatusCode, out, resp.Header.Get("Retry-After"))
	}
	form, err := http.PostForm(srv.URL+"/console/auth/login", url.Values{"username": {"op1"}, "password": {pw}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(form.Body)
	form.Body.Close()
	if form.StatusCode != http.StatusServiceUnavailable || form.Header.Get("Retry-After") == "" || !strings.Contains(string(page), "系统繁忙") {
		t.Fatalf("form login answered %d (Retry-After %q)", form.StatusCode, form.Header.Get("Retry-After"))
	}
	if err := held.Rollback(); err != nil {
		t.Fatal(err)
	}
	if resp, out := apiLogin(); resp.StatusCode != http.StatusOK {
		t.Fatalf("with the store free: %d %v", resp.StatusCode, out)
	}
}

// TestLoginFailsClosedWithoutAudit: a login whose audit record cannot be
// written is refused (503 with Retry-After, problem+json), its session is
// withdrawn so no token is usable, and nothing says success; once the
// audit log takes records again the same login succeeds and is recorded.
func TestLoginFailsClosedWithoutAudit(t *testing.T) {
	db := storetest.Open(t)
	ctx := context.Background()
	m, _, fa := newManager(t, db)
	pw, err := m.CreateUser(ctx, cli, "op1", "", RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.StripPrefix("/console/auth", m.Handler()))
	defer srv.Close()
	login := func() (*http.Response, map[string]any) {
		b, _ := json.Marshal(map[string]string{"username": "op1", "password": pw})
		resp, err := http.Post(srv.URL+"/console/auth/login", "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp, out
	}
	sessions := func() int {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM console_sessions`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	fa.Fail(errors.New("audit disk full"))
	resp, out := login()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || out["code"] != "unavailable" {
		t.Fatalf("login without an audit trail answered %d %v, want 503 unavailable", resp.StatusCode, out)
	}
	for _, c := range resp.Cookies() {
		if c.Value != "" {
			t.Fatalf("a refused login set cookie %s", c.Name)
		}
	}
	if n := sessions(); n != 0 {
		t.Fatalf("%d sessions left behind by a refused login", n)
	}
	if _, err := m.Login(ctx, "op1", pw, "127.0.0.1"); !errors.Is(err, ErrAuditUnavailable) {
		t.Fatalf("Login without an audit trail: %v, want ErrAuditUnavailable", err)
	}
	fa.Fail(nil)
	if resp, out := login(); resp.StatusCode != http.StatusOK {
		t.Fatalf("with the audit trail back: %d %v", resp.StatusCode, out)
	}
	if !fa.Has("console.login", audit.OutcomeSuccess, "role=operator") || sessions() != 1 {
		t.Fatalf("after the login: %d sessions, records %+v", sessions(), fa.Records())
	}
}
