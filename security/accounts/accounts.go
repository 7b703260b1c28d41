package accounts

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/security"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/store"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// Component is the migration component name.
const Component = "accounts"

// Migrations returns the schema of component "accounts".
func Migrations() fs.FS {
	sub, _ := fs.Sub(migrationsFS, "migrations")
	return sub
}

// Role is a console duty. An account has exactly one.
type Role string

// The roles. Operators run the exchange (console views, replays);
// security administrators manage accounts and keys; auditors read and
// export the audit log. No account can hold two of them.
const (
	RoleOperator      Role = "operator"
	RoleSecurityAdmin Role = "security-admin"
	RoleAuditor       Role = "auditor"
)

// Roles lists the valid roles.
var Roles = []Role{RoleOperator, RoleSecurityAdmin, RoleAuditor}

// ParseRole checks a role name.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	return "", fmt.Errorf("%w: %q (want operator, security-admin or auditor)", ErrRole, s)
}

// Sentinel errors. Match them with errors.Is.
var (
	// ErrInvalidCredentials: unknown user, wrong password or disabled account
	// (one error for all, so a caller cannot probe for user names).
	ErrInvalidCredentials = errors.New("accounts: invalid user name or password")
	// ErrLocked: too many failures; see LockedError for until when.
	ErrLocked = errors.New("accounts: account locked")
	// ErrExists: the user name is taken.
	ErrExists = errors.New("accounts: user exists")
	// ErrNotFound: no such user.
	ErrNotFound = errors.New("accounts: no such user")
	// ErrRole: not a role.
	ErrRole = errors.New("accounts: bad role")
	// ErrUsername: the user name breaks the naming rule.
	ErrUsername = errors.New("accounts: bad user name")
	// ErrLastSecurityAdmin: the change would leave no active security administrator.
	ErrLastSecurityAdmin = errors.New("accounts: would leave no active security administrator")
	// ErrThrottled: too many failed logins from the caller's address.
	ErrThrottled = errors.New("accounts: too many failed logins from this address")
	// ErrSession: no session, or it expired.
	ErrSession = errors.New("accounts: no valid session")
)

// LockedError says until when an account is locked.
type LockedError struct{ Until time.Time }

func (e *LockedError) Error() string {
	return "accounts: account locked until " + e.Until.UTC().Format(time.RFC3339)
}

// Is makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Is(target error) bool {
	return target == ErrLocked || target == ErrInvalidCredentials
}

// User is a console account as callers see it (never the hash).
type User struct {
	ID          int64     `json:"id"`
	Username    string    `json:"username"`
	DisplayName string    `json:"display_name"`
	Role        Role      `json:"role"`
	Disabled    bool      `json:"disabled"`
	LockedUntil time.Time `json:"locked_until,omitzero"`
	// MustChange is set for a one-time password; PasswordExpired when the
	// password is older than the policy allows. Either limits the session
	// to changing the password.
	MustChange      bool      `json:"must_change_password"`
	PasswordExpired bool      `json:"password_expired"`
	PasswordChanged time.Time `json:"password_changed"`
	Created         time.Time `json:"created"`
	LastLogin       time.Time `json:"last_login,omitzero"`
}

// Actor names who performs an administrative action, for the audit log.
type Actor struct {
	// Name is "user:<name>" or "cli:<os user>".
	Name string
	// SourceIP is "" for the command line.
	SourceIP string
	// RequestID correlates with the HTTP request, if any.
	RequestID string
}

// Manager owns console accounts and sessions.
type Manager struct {
	db    *store.DB
	cfg   security.ConsoleConfig
	audit audit.Appender
	// unauth receives what callers who have not authenticated cause
	// (failed logins): an aggregating audit.Throttle in the hub.
	unauth     audit.Appender
	seal       Sealer
	clock      clock.Clock
	log        *slog.Logger
	iterations int
	loginPath  string
	homePath   string

	// ipMu guards ipFails: failed logins per source address in the current
	// window, against password spraying across many accounts.
	ipMu    sync.Mutex
	ipFails map[string]*ipWindow

	logins *prometheus.CounterVec
	reg    prometheus.Registerer
}

type ipWindow struct {
	start time.Time
	count int
}

// Per-address login throttle: more than ipMaxFailures failures from one
// address within ipWindowLen refuse further logins from it until the window
// ends. Per-account lockout still applies.
const (
	ipMaxFailures = 20
	ipWindowLen   = 10 * time.Minute
)

// Option configures a Manager.
type Option func(*Manager)

// WithClock sets the clock (tests).
func WithClock(c clock.Clock) Option { return func(m *Manager) { m.clock = c } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(m *Manager) { m.log = l } }

// WithIterations sets the PBKDF2 iteration count of new hashes (tests use a
// small one; production keeps DefaultIterations).
func WithIterations(n int) Option { return func(m *Manager) { m.iterations = n } }

// WithLoginPath makes Middleware redirect browsers (Accept: text/html)
// without a session to path instead of answering 401.
func WithLoginPath(path string) Option { return func(m *Manager) { m.loginPath = path } }

// WithRegisterer registers the login metrics on reg.
func WithRegisterer(reg prometheus.Registerer) Option { return func(m *Manager) { m.reg = reg } }

// WithUnauthenticatedAudit routes the audit records of failed logins
// (callers not authenticated) through a (an audit.Throttle), so a flood
// of attempts is counted rather than written one record each. Lockouts and
// successful logins still go to the audit log directly.
func WithUnauthenticatedAudit(a audit.Appender) Option { return func(m *Manager) { m.unauth = a } }

// WithHomePath sets where browsers go after logging in or changing their
// password (default "/console/").
func WithHomePath(path string) Option { return func(m *Manager) { m.homePath = path } }

// New migrates the accounts schema and returns the manager. audit is
// required: every login, logout and account change is audited.
func New(ctx context.Context, db *store.DB, cfg security.ConsoleConfig, a audit.Appender, opts ...Option) (*Manager, error) {
	if a == nil {
		return nil, errors.New("accounts: an audit.Appender is required")
	}
	if err := db.Migrate(ctx, Component, Migrations()); err != nil {
		return nil, err
	}
	m := &Manager{db: db, cfg: cfg, audit: a, clock: clock.Real{}, log: slog.New(slog.DiscardHandler), iterations: DefaultIterations, homePath: "/console/", ipFails: map[string]*ipWindow{}}
	for _, o := range opts {
		o(m)
	}
	m.logins = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mzhub_console_logins_total",
		Help: "Console login attempts by outcome (success, wrong_password, unknown_user, locked, disabled, throttled, second_factor, audit_unavailable).",
	}, []string{"outcome"})
	if m.reg != nil {
		if err := m.reg.Register(m.logins); err != nil {
			return nil, fmt.Errorf("accounts: register metrics: %w", err)
		}
	}
	return m, nil
}

var usernameRE = regexp.MustCompile(`^[a-z][a-z0-9._-]{2,31}$`)

func (m *Manager) record(ctx context.Context, actor Actor, action, object, outcome, detail string) {
	m.recordTo(ctx, m.audit, actor, action, object, outcome, detail)
}

// recordUnauth audits what a caller who has not authenticated caused.
func (m *Manager) recordUnauth(ctx context.Context, actor Actor, action, object, outcome, detail string) {
	to := m.unauth
	if to == nil {
		to = m.audit
	}
	m.recordTo(ctx, to, actor, action, object, outcome, detail)
}

func (m *Manager) recordTo(ctx context.Context, to audit.Appender, actor Actor, action, object, outcome, detail string) {
	if err := m.appendTo(ctx, to, actor, action, object, outcome, detail); err != nil {
		m.log.Error("audit append failed", "action", action, "err", err)
	}
}

// appendTo writes one audit record and reports whether it is durable.
func (m *Manager) appendTo(ctx context.Context, to audit.Appender, actor Actor, action, object, outcome, detail string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, err := to.Append(ctx, audit.Record{
		Actor: actor.Name, SourceIP: actor.SourceIP, Action: action, Object: object,
		Outcome: outcome, RequestID: actor.RequestID, Detail: detail,
	})
	return err
}

const userCols = `id, username, display_name, role, password_hash, password_changed_ms, must_change, failed_count, locked_until_ms, disabled, created_ms, last_login_ms`

type userRow struct {
	User
	hash   string
	failed int
}

type rowScanner interface{ Scan(dest ...any) error }

func (m *Manager) scanUser(s rowScanner) (userRow, error) {
	var u userRow
	var role string
	var changed, locked, created, last int64
	var must, disabled int
	err := s.Scan(&u.ID, &u.Username, &u.DisplayName, &role, &u.hash, &changed, &must, &u.failed, &locked, &disabled, &created, &last)
	if err != nil {
		return u, err
	}
	u.Role = Role(role)
	u.PasswordChanged = time.UnixMilli(changed)
	u.MustChange = must != 0
	u.Disabled = disabled != 0
	if locked > 0 {
		u.LockedUntil = time.UnixMilli(locked)
	}
	u.Created = time.UnixMilli(created)
	if last > 0 {
		u.LastLogin = time.UnixMilli(last)
	}
	u.PasswordExpired = m.clock.Now().Sub(u.PasswordChanged) > m.cfg.PasswordMaxAge
	return u, nil
}

func (m *Manager) getUser(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, username string) (userRow, error) {
	u, err := m.scanUser(q.QueryRowContext(ctx, m.db.Rebind(`SELECT `+userCols+` FROM console_users WHERE username = ?`), username))
	if errors.Is(err, sql.ErrNoRows) {
		return u, fmt.Errorf("%w: %s", ErrNotFound, username)
	}
	return u, err
}

// Get returns one user.
func (m *Manager) Get(ctx context.Context, username string) (User, error) {
	u, err := m.getUser(ctx, m.db, username)
	return u.User, err
}

// List returns every user, by name.
func (m *Manager) List(ctx context.Context) ([]User, error) {
	rows, err := m.db.QueryContext(ctx, `SELECT `+userCols+` FROM console_users ORDER BY username`)
	if err != nil {
		return nil, fmt.Errorf("accounts: list: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := m.scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("accounts: list: %w", err)
		}
		out = append(out, u.User)
	}
	return out, rows.Err()
}

// CreateUser adds an account with a one-time password, which it returns:
// hand it to the person through a separate channel; it must be changed at
// first login. User names are 3-32 characters of [a-z0-9._-] starting with a
// letter.
func (m *Manager) CreateUser(ctx context.Context, actor Actor, username, displayName string, role Role) (string, error) {
	if !usernameRE.MatchString(username) {
		return "", fmt.Errorf("%w: %q (3-32 characters of a-z 0-9 . _ -, starting with a letter)", ErrUsername, username)
	}
	if _, err := ParseRole(string(role)); err != nil {
		return "", err
	}
	otp := oneTimePassword()
	hash, err := hashPassword(otp, m.iterations)
	if err != nil {
		return "", err
	}
	now := m.clock.Now().UnixMilli()
	res, err := m.db.ExecContext(ctx, m.db.Rebind(`INSERT INTO console_users (username, display_name, role, password_hash,
		password_changed_ms, must_change, failed_count, locked_until_ms, disabled, created_ms, last_login_ms)
		VALUES (?, ?, ?, ?, ?, 1, 0, 0, 0, ?, 0) ON CONFLICT DO NOTHING`),
		username, strings.TrimSpace(displayName), string(role), hash, now, now)
	if err != nil {
		return "", fmt.Errorf("accounts: create %s: %w", username, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		m.record(ctx, actor, "account.create", "user:"+username, audit.OutcomeFailure, "user exists")
		return "", fmt.Errorf("%w: %s", ErrExists, username)
	}
	m.record(ctx, actor, "account.create", "user:"+username, audit.OutcomeSuccess, "role="+string(role))
	return otp, nil
}

// ResetPassword gives an account a new one-time password (and unlocks it)
// and ends its sessions.
func (m *Manager) ResetPassword(ctx context.Context, actor Actor, username string) (string, error) {
	otp := oneTimePassword()
	hash, err := hashPassword(otp, m.iterations)
	if err != nil {
		return "", err
	}
	err = m.update(ctx, actor, "account.reset_password", username, "",
		`UPDATE console_users SET password_hash = ?, password_changed_ms = ?, must_change = 1, failed_count = 0, locked_until_ms = 0 WHERE username = ?`,
		hash, m.clock.Now().UnixMilli(), username)
	if err != nil {
		return "", err
	}
	return otp, m.endSessions(ctx, username)
}

// SetDisabled disables or re-enables an account. Disabling ends its
// sessions; the last active security administrator cannot be disabled.
func (m *Manager) SetDisabled(ctx context.Context, actor Actor, username string, disabled bool) error {
	action, flag := "account.enable", 0
	if disabled {
		action, flag = "account.disable", 1
		u, err := m.getUser(ctx, m.db, username)
		if err != nil {
			m.record(ctx, actor, action, "user:"+username, audit.OutcomeFailure, "no such user")
			return err
		}
		if u.Role == RoleSecurityAdmin && !u.Disabled {
			var n int
			if err := m.db.QueryRowContext(ctx, m.db.Rebind(`SELECT COUNT(*) FROM console_users WHERE role = ? AND disabled = 0`), string(RoleSecurityAdmin)).Scan(&n); err != nil {
				return fmt.Errorf("accounts: %w", err)
			}
			if n <= 1 {
				m.record(ctx, actor, action, "user:"+username, audit.OutcomeDenied, "last security administrator")
				return ErrLastSecurityAdmin
			}
		}
	}
	if err := m.update(ctx, actor, action, username, "", `UPDATE console_users SET disabled = ? WHERE username = ?`, flag, username); err != nil {
		return err
	}
	if disabled {
		return m.endSessions(ctx, username)
	}
	return nil
}

// Unlock clears an account's lockout and failure count.
func (m *Manager) Unlock(ctx context.Context, actor Actor, username string) error {
	return m.update(ctx, actor, "account.unlock", username, "", `UPDATE console_users SET failed_count = 0, locked_until_ms = 0 WHERE username = ?`, username)
}

func (m *Manager) update(ctx context.Context, actor Actor, action, username, detail, q string, args ...any) error {
	res, err := m.db.ExecContext(ctx, m.db.Rebind(q), args...)
	if err != nil {
		m.record(ctx, actor, action, "user:"+username, audit.OutcomeFailure, "store error")
		return fmt.Errorf("accounts: %s %s: %w", action, username, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		m.record(ctx, actor, action, "user:"+username, audit.OutcomeFailure, "no such user")
		return fmt.Errorf("%w: %s", ErrNotFound, username)
	}
	m.record(ctx, actor, action, "user:"+username, audit.OutcomeSuccess, detail)
	return nil
}

// ChangePassword sets a new password after checking the old one and the
// policy (the new one must also differ from the old). It clears the
// one-time flag and ends the user's other sessions (keepToken, if any,
// stays).
func (m *Manager) ChangePassword(ctx context.Context, actor Actor, username, oldPW, newPW, keepToken string) error {
	u, err := m.getUser(ctx, m.db, username)
	if err != nil {
		return err
	}
	if ok, _ := checkPassword(u.hash, oldPW); !ok {
		m.record(ctx, actor, "account.change_password", "user:"+username, audit.OutcomeFailure, "wrong current password")
		return ErrInvalidCredentials
	}
	if err := CheckPolicy(newPW, username, m.cfg.PasswordMinLength, m.cfg.PasswordMinClasses); err != nil {
		m.record(ctx, actor, "account.change_password", "user:"+username, audit.OutcomeDenied, "policy")
		return err
	}
	if oldPW == newPW {
		m.record(ctx, actor, "account.change_password", "user:"+username, audit.OutcomeDenied, "policy")
		return &PolicyError{Reasons: []string{"must differ from the current password"}}
	}
	reused, err := m.recentlyUsed(ctx, u.ID, newPW)
	if err != nil {
		return err
	}
	if reused {
		m.record(ctx, actor, "account.change_password", "user:"+username, audit.OutcomeDenied, "policy: reused")
		return &PolicyError{Reasons: []string{fmt.Sprintf("must differ from the last %d passwords", PasswordHistory)}}
	}
	if _, err := m.db.ExecContext(ctx, m.db.Rebind(`INSERT INTO console_password_history (user_id, password_hash, changed_ms) VALUES (?, ?, ?)`),
		u.ID, u.hash, m.clock.Now().UnixMilli()); err != nil {
		return fmt.Errorf("accounts: password history: %w", err)
	}
	hash, err := hashPassword(newPW, m.iterations)
	if err != nil {
		return err
	}
	if err := m.update(ctx, actor, "account.change_password", username, "",
		`UPDATE console_users SET password_hash = ?, password_changed_ms = ?, must_change = 0 WHERE username = ?`,
		hash, m.clock.Now().UnixMilli(), username); err != nil {
		return err
	}
	_, err = m.db.ExecContext(ctx, m.db.Rebind(`DELETE FROM console_sessions WHERE user_id = ? AND token_hash <> ?`), u.ID, tokenHash(keepToken))
	if err != nil {
		return fmt.Errorf("accounts: end sessions: %w", err)
	}
	return nil
}

// PasswordHistory is how many recent passwords (the current one included) a
// new one must differ from.
const PasswordHistory = 5

// recentlyUsed reports whether pw matches one of the user's previous
// PasswordHistory-1 passwords (the current one is the last of the
// PasswordHistory and is checked by the caller).
func (m *Manager) recentlyUsed(ctx context.Context, userID int64, pw string) (bool, error) {
	rows, err := m.db.QueryContext(ctx, m.db.Rebind(`SELECT password_hash FROM console_password_history WHERE user_id = ? ORDER BY changed_ms DESC, id DESC LIMIT `+fmt.Sprint(PasswordHistory-1)), userID)
	if err != nil {
		return false, fmt.Errorf("accounts: password history: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return false, fmt.Errorf("accounts: password history: %w", err)
		}
		if ok, _ := checkPassword(h, pw); ok {
			return true, nil
		}
	}
	return false, rows.Err()
}

func (m *Manager) endSessions(ctx context.Context, username string) error {
	_, err := m.db.ExecContext(ctx, m.db.Rebind(`DELETE FROM console_sessions WHERE user_id = (SELECT id FROM console_users WHERE username = ?)`), username)
	if err != nil {
		return fmt.Errorf("accounts: end sessions of %s: %w", username, err)
	}
	return nil
}
