package accounts

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/emmansun/gmsm/sm3"

	"github.com/shanghai-mca/mzhub/problem"
	"github.com/shanghai-mca/mzhub/security/audit"
)

// Cookie and header names.
const (
	// CookieName holds the session token (HttpOnly, SameSite=Strict, Secure
	// unless security.console.cookie_secure is off).
	CookieName = "mzhub_session"
	// CSRFHeader carries the session's CSRF token on unsafe requests; forms
	// may send it as the CSRFField field instead.
	CSRFHeader = "X-CSRF-Token"
	// CSRFField is the form field alternative to CSRFHeader.
	CSRFField = "csrf_token"
)

// Session is a logged-in console session.
type Session struct {
	// Token goes into the cookie; the store keeps only its SM3.
	Token string
	// CSRF must accompany every unsafe request of the session.
	CSRF string
	// User is the session's account.
	User User
	// Created and LastSeen bound the session's life.
	Created, LastSeen time.Time
}

func tokenHash(token string) string {
	d := sm3.Sum([]byte(token))
	return hex.EncodeToString(d[:])
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Login checks a user name and password and opens a session. Unknown users,
// wrong passwords, disabled and locked accounts all give an error matching
// ErrInvalidCredentials (a locked account's is a *LockedError, which also
// matches ErrLocked, for the audit trail and the CLI): the HTTP answers are
// the same for all of them, so they do not tell which names exist. The
// MaxFailures-th consecutive failure locks the account for LockoutDuration.
// Before anything else, a source address with too many failures in the
// window is refused (ErrThrottled), whatever the name, empty included.
func (m *Manager) Login(ctx context.Context, username, password, sourceIP string) (Session, error) {
	return m.LoginWithCode(ctx, username, password, "", sourceIP)
}

// LoginWithCode is Login with the one-time code of the second factor: an
// account with a TOTP enrolled (and every account whose role is in
// security.console.second_factor_roles) needs the current code besides
// the password. A missing, wrong or reused code fails like a wrong password
// (ErrInvalidCredentials), and counts against the source address.
func (m *Manager) LoginWithCode(ctx context.Context, username, password, code, sourceIP string) (Session, error) {
	actor := Actor{Name: "user:" + username, SourceIP: sourceIP}
	now := m.clock.Now()
	if m.throttled(sourceIP, now) {
		m.logins.WithLabelValues("throttled").Inc()
		m.recordUnauth(ctx, actor, "console.login", "user:"+username, audit.OutcomeDenied, "too many failures from this address")
		return Session{}, ErrThrottled
	}
	if !usernameRE.MatchString(username) || len(password) > 4*MaxPasswordLength {
		m.failedFrom(sourceIP, now)
		m.logins.WithLabelValues("unknown_user").Inc()
		m.recordUnauth(ctx, actor, "console.login", "user:"+username, audit.OutcomeFailure, "unknown user")
		return Session{}, ErrInvalidCredentials
	}
	u, err := m.getUser(ctx, m.db, username)
	if errors.Is(err, ErrNotFound) {
		m.failedFrom(sourceIP, now)
		m.logins.WithLabelValues("unknown_user").Inc()
		// Spend the same time as a real check so timing does not tell.
		m.dummyCheck(password)
		m.recordUnauth(ctx, actor, "console.login", "user:"+username, audit.OutcomeFailure, "unknown user")
		return Session{}, ErrInvalidCredentials
	}
	if err != nil {
		return Session{}, fmt.Errorf("accounts: login: %w", err)
	}
	if now.Before(u.LockedUntil) {
		m.failedFrom(sourceIP, now)
		m.logins.WithLabelValues("locked").Inc()
		m.dummyCheck(password) // as long as a real check: timing does not tell either
		m.recordUnauth(ctx, actor, "console.login", "user:"+username, audit.OutcomeDenied, "account locked")
		return Session{}, &LockedError{Until: u.LockedUntil}
	}
	ok, iter := checkPassword(u.hash, password)
	if !ok || u.Disabled {
		m.failedFrom(sourceIP, now)
		if u.Disabled {
			m.logins.WithLabelValues("disabled").Inc()
			m.recordUnauth(ctx, actor, "console.login", "user:"+username, audit.OutcomeDenied, "account disabled")
			return Session{}, ErrInvalidCredentials
		}
		m.logins.WithLabelValues("wrong_password").Inc()
		return Session{}, m.fail(ctx, actor, u, now)
	}
	// The second factor: over the TLCP listener the client certificate
	// (cryptographic, and it must be this account's), elsewhere TOTP.
	factor := ""
	cert, withCert := ClientCertFrom(ctx)
	var why string
	if withCert {
		factor = " factor=cert:" + cert.Short()
		why, err = m.checkCert(ctx, u, cert, now)
	} else {
		why, err = m.checkTOTP(ctx, u, code, now)
	}
	if err != nil {
		return Session{}, err
	} else if why != "" {
		m.failedFrom(sourceIP, now)
		m.logins.WithLabelValues("second_factor").Inc()
		outcome := audit.OutcomeFailure
		if withCert {
			outcome = audit.OutcomeDenied
		}
		m.recordUnauth(ctx, actor, "console.login", "user:"+username, outcome, why)
		return Session{}, ErrInvalidCredentials
	}
	if iter < m.iterations {
		if h, err := hashPassword(password, m.iterations); err == nil {
			_, _ = m.db.ExecContext(ctx, m.db.Rebind(`UPDATE console_users SET password_hash = ? WHERE id = ?`), h, u.ID)
		}
	}
	s := Session{Token: randomToken(), CSRF: randomToken(), User: u.User, Created: now, LastSeen: now}
	err = m.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, m.db.Rebind(`UPDATE console_users SET failed_count = 0, locked_until_ms = 0, last_login_ms = ? WHERE id = ?`), now.UnixMilli(), u.ID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, m.db.Rebind(`INSERT INTO console_sessions (token_hash, user_id, csrf, source_ip, created_ms, last_seen_ms) VALUES (?, ?, ?, ?, ?, ?)`),
			tokenHash(s.Token), u.ID, s.CSRF, sourceIP, now.UnixMilli(), now.UnixMilli())
		return err
	})
	if err != nil {
		return Session{}, fmt.Errorf("accounts: login: %w", err)
	}
	detail := "role=" + string(u.Role) + factor
	if u.MustChange || u.PasswordExpired {
		detail += " password_change_required"
	}
	// Fail closed: no console session the audit trail does not show. The
	// session is written first (a record of a login that then failed would
	// be false) and withdrawn again when its record cannot be written.
	if err := m.appendTo(ctx, m.audit, actor, "console.login", "user:"+username, audit.OutcomeSuccess, detail); err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, derr := m.db.ExecContext(dctx, m.db.Rebind(`DELETE FROM console_sessions WHERE token_hash = ?`), tokenHash(s.Token)); derr != nil {
			// The token never left the hub: the row is unusable and
			// pruned with the expired sessions.
			m.log.Error("console login: withdrawing the unaudited session failed", "user", username, "err", derr)
		}
		m.logins.WithLabelValues("audit_unavailable").Inc()
		m.log.Error("console login refused: its audit record could not be written", "user", username, "err", err)
		return Session{}, fmt.Errorf("%w: %w", ErrAuditUnavailable, err)
	}
	m.logins.WithLabelValues("success").Inc()
	return s, nil
}

// dummyCheck spends the time of a password check.
func (m *Manager) dummyCheck(password string) {
	checkPassword("pbkdf2-sm3$"+fmt.Sprint(m.iterations)+"$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", password)
}

// throttled reports whether ip has used up its failures in this window.
func (m *Manager) throttled(ip string, now time.Time) bool {
	m.ipMu.Lock()
	defer m.ipMu.Unlock()
	w := m.ipFails[ip]
	return w != nil && now.Sub(w.start) < ipWindowLen && w.count >= ipMaxFailures
}

// failedFrom counts a failed login from ip.
func (m *Manager) failedFrom(ip string, now time.Time) {
	m.ipMu.Lock()
	defer m.ipMu.Unlock()
	if len(m.ipFails) > 10000 {
		for k, w := range m.ipFails {
			if now.Sub(w.start) >= ipWindowLen {
				delete(m.ipFails, k)
			}
		}
	}
	w := m.ipFails[ip]
	if w == nil || now.Sub(w.start) >= ipWindowLen {
		w = &ipWindow{start: now}
		m.ipFails[ip] = w
	}
	w.count++
}

// fail counts a failed login and locks the account at the limit.
func (m *Manager) fail(ctx context.Context, actor Actor, u userRow, now time.Time) error {
	failed := u.failed + 1
	var locked int64
	if failed >= m.cfg.MaxFailures {
		locked = now.Add(m.cfg.LockoutDuration).UnixMilli()
		failed = 0
	}
	if _, err := m.db.ExecContext(ctx, m.db.Rebind(`UPDATE console_users SET failed_count = ?, locked_until_ms = ? WHERE id = ?`), failed, locked, u.ID); err != nil {
		return fmt.Errorf("accounts: login: %w", err)
	}
	if locked > 0 {
		m.record(ctx, actor, "console.login", "user:"+u.Username, audit.OutcomeFailure, fmt.Sprintf("wrong password; account locked for %s", m.cfg.LockoutDuration))
		m.log.Warn("console account locked after failed logins", "user", u.Username, "source_ip", actor.SourceIP)
		return &LockedError{Until: time.UnixMilli(locked)}
	}
	m.recordUnauth(ctx, actor, "console.login", "user:"+u.Username, audit.OutcomeFailure, fmt.Sprintf("wrong password (%d of %d)", failed, m.cfg.MaxFailures))
	return ErrInvalidCredentials
}

// Authenticate returns the session of a token, enforcing the idle and
// absolute timeouts (an expired session is deleted) and refreshing its
// last-seen time.
func (m *Manager) Authenticate(ctx context.Context, token string) (Session, error) {
	if token == "" || len(token) > 128 {
		return Session{}, ErrSession
	}
	now := m.clock.Now()
	th := tokenHash(token)
	var s Session
	var uid, created, seen int64
	err := m.db.QueryRowContext(ctx, m.db.Rebind(`SELECT user_id, csrf, created_ms, last_seen_ms FROM console_sessions WHERE token_hash = ?`), th).
		Scan(&uid, &s.CSRF, &created, &seen)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, ErrSession
	}
	if err != nil {
		return Session{}, fmt.Errorf("accounts: session: %w", err)
	}
	s.Token, s.Created, s.LastSeen = token, time.UnixMilli(created), time.UnixMilli(seen)
	if now.Sub(s.LastSeen) > m.cfg.IdleTimeout || now.Sub(s.Created) > m.cfg.SessionMaxAge {
		_, _ = m.db.ExecContext(ctx, m.db.Rebind(`DELETE FROM console_sessions WHERE token_hash = ?`), th)
		return Session{}, fmt.Errorf("%w: expired", ErrSession)
	}
	u, err := m.scanUser(m.db.QueryRowContext(ctx, m.db.Rebind(`SELECT `+userCols+` FROM console_users WHERE id = ?`), uid))
	if err != nil || u.Disabled {
		return Session{}, ErrSession
	}
	s.User = u.User
	// Refresh at most every 10 seconds to keep writes down.
	if now.Sub(s.LastSeen) > 10*time.Second {
		if _, err := m.db.ExecContext(ctx, m.db.Rebind(`UPDATE console_sessions SET last_seen_ms = ? WHERE token_hash = ?`), now.UnixMilli(), th); err != nil {
			return Session{}, fmt.Errorf("accounts: session: %w", err)
		}
		s.LastSeen = now
	}
	return s, nil
}

// Logout ends the session of token.
func (m *Manager) Logout(ctx context.Context, s Session, sourceIP string) error {
	if _, err := m.db.ExecContext(ctx, m.db.Rebind(`DELETE FROM console_sessions WHERE token_hash = ?`), tokenHash(s.Token)); err != nil {
		return fmt.Errorf("accounts: logout: %w", err)
	}
	m.record(ctx, Actor{Name: "user:" + s.User.Username, SourceIP: sourceIP}, "console.logout", "user:"+s.User.Username, audit.OutcomeSuccess, "")
	return nil
}

// PruneSessions deletes sessions past their timeouts; the hub may call it
// periodically (Authenticate also removes them one by one).
func (m *Manager) PruneSessions(ctx context.Context) (int64, error) {
	now := m.clock.Now()
	res, err := m.db.ExecContext(ctx, m.db.Rebind(`DELETE FROM console_sessions WHERE last_seen_ms < ? OR created_ms < ?`),
		now.Add(-m.cfg.IdleTimeout).UnixMilli(), now.Add(-m.cfg.SessionMaxAge).UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("accounts: prune sessions: %w", err)
	}
	return res.RowsAffected()
}

type ctxKey struct{}

// SessionFrom returns the session a request was authenticated with.
func SessionFrom(ctx context.Context) (Session, bool) {
	s, ok := ctx.Value(ctxKey{}).(Session)
	return s, ok
}

// UserFrom returns the authenticated console user of a request.
func UserFrom(ctx context.Context) (User, bool) {
	s, ok := SessionFrom(ctx)
	return s.User, ok
}

// CSRFToken returns the CSRF token to embed in pages of the request's session.
func CSRFToken(ctx context.Context) string {
	s, _ := SessionFrom(ctx)
	return s.CSRF
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// checkCSRF requires the session's token on unsafe methods, and a matching
// Origin when the browser sends one.
func checkCSRF(r *http.Request, s Session) bool {
	if safeMethod(r.Method) {
		return true
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	tok := r.Header.Get(CSRFHeader)
	if tok == "" && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		tok = r.PostFormValue(CSRFField)
	}
	return tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.CSRF)) == 1
}

func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// sourceIP is the peer address (the console is not behind a trusted proxy
// in the reference deployment).
func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// passwordChangeAllowed lists what a session limited to changing its
// password may still reach (relative to the accounts handler).
var passwordChangeAllowed = []string{"/password", "/logout", "/session"}

// Middleware authenticates console requests by the session cookie: it puts
// the session into the context, checks CSRF on unsafe methods and limits
// sessions with a one-time or expired password to the password change.
// Without a session it answers 401 problem+json (or redirects browsers to
// the login page, see WithLoginPath).
func (m *Manager) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok := m.sessionOf(w, r)
		if !ok {
			return
		}
		if (s.User.MustChange || s.User.PasswordExpired) && !slices.ContainsFunc(passwordChangeAllowed, func(p string) bool { return strings.HasSuffix(r.URL.Path, p) }) {
			problem.Write(w, r, problem.PasswordChangeRequired())
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxKey{}, s)))
	})
}

func (m *Manager) sessionOf(w http.ResponseWriter, r *http.Request) (Session, bool) {
	var token string
	if c, err := r.Cookie(CookieName); err == nil {
		token = c.Value
	}
	s, err := m.Authenticate(r.Context(), token)
	if err != nil {
		if busy(err) {
			m.log.Warn("console session lookup refused: the state store is busy", "err", err)
			problem.Write(w, r, busyProblem(err))
			return s, false
		}
		if !errors.Is(err, ErrSession) {
			m.log.Error("console session lookup failed", "err", err)
			problem.Write(w, r, problem.Internal(err))
			return s, false
		}
		if token != "" {
			m.clearCookie(w)
		}
		if m.loginPath != "" && wantsHTML(r) && safeMethod(r.Method) {
			http.Redirect(w, r, m.loginPath, http.StatusSeeOther)
			return s, false
		}
		problem.Write(w, r, problem.Unauthenticated("log in to the console"))
		return s, false
	}
	if !checkCSRF(r, s) {
		m.record(r.Context(), Actor{Name: "user:" + s.User.Username, SourceIP: sourceIP(r)}, "console.csrf", r.Method+" "+r.URL.Path, audit.OutcomeDenied, "")
		problem.Write(w, r, problem.CSRFFailed())
		return s, false
	}
	return s, true
}

// RequireRole lets a request through only when Middleware authenticated it
// and the user holds one of roles: 401 without a session, 403 for another
// role. It does not audit refusals; Manager.RequireRole does.
func RequireRole(roles ...Role) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, ok := UserFrom(r.Context())
			if !ok {
				problem.Write(w, r, problem.Unauthenticated("log in to the console"))
				return
			}
			if !slices.Contains(roles, u.Role) {
				problem.Write(w, r, problem.Forbidden("your role does not allow this"))
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// RequireRole is the package RequireRole that also audits refusals.
func (m *Manager) RequireRole(roles ...Role) func(http.Handler) http.Handler {
	inner := RequireRole(roles...)
	return func(next http.Handler) http.Handler {
		guarded := inner(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, ok := UserFrom(r.Context()); ok && !slices.Contains(roles, u.Role) {
				m.record(r.Context(), Actor{Name: "user:" + u.Username, SourceIP: sourceIP(r)}, "console.access", r.Method+" "+r.URL.Path, audit.OutcomeDenied, "role="+string(u.Role))
			}
			guarded.ServeHTTP(w, r)
		})
	}
}

func (m *Manager) setCookie(w http.ResponseWriter, token string) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: token, Path: "/", HttpOnly: true, Secure: m.cfg.CookieSecure,
		SameSite: http.SameSiteStrictMode, MaxAge: int(m.cfg.SessionMaxAge / time.Second),
	})
}

func (m *Manager) clearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", HttpOnly: true, Secure: m.cfg.CookieSecure, SameSite: http.SameSiteStrictMode, MaxAge: -1})
}
