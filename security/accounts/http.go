package accounts

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/problem"
)

// Handler serves the account endpoints, relative to where it is mounted
// (for example http.StripPrefix("/console/auth", m.Handler())):
//
//	GET  /login                 HTML login page (form posts back to /login)
//	POST /login                 {"username","password"} → session cookie + SessionInfo
//	                            (a form post redirects to the password page or home instead)
//	POST /logout                ends the session
//	GET  /session               SessionInfo (with the CSRF token)
//	GET  /password              HTML password-change page
//	POST /password              {"old_password","new_password"} (or the page's form)
//	GET  /users                 list (security-admin)
//	POST /users                 {"username","display_name","role"} → one-time password (security-admin)
//	POST /users/{name}/disable, /enable, /unlock, /reset-password (security-admin)
//
// Requests and answers are JSON; errors are problem+json. Every unsafe
// request but /login carries the CSRF token in X-CSRF-Token.
func (m *Manager) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", m.handleLoginPage)
	mux.HandleFunc("POST /login", m.handleLogin)
	authed := func(h http.HandlerFunc) http.Handler { return m.Middleware(h) }
	admin := func(h http.HandlerFunc) http.Handler {
		return m.Middleware(m.RequireRole(RoleSecurityAdmin)(h))
	}
	mux.Handle("POST /logout", authed(m.handleLogout))
	mux.Handle("GET /session", authed(m.handleSession))
	mux.Handle("GET /password", authed(m.handlePasswordPage))
	mux.Handle("POST /password", authed(m.handlePassword))
	mux.Handle("GET /users", admin(m.handleListUsers))
	mux.Handle("POST /users", admin(m.handleCreateUser))
	mux.Handle("POST /users/{name}/{op}", admin(m.handleUserOp))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, problem.NotFound("no such account endpoint"))
	})
	return mux
}

// SessionInfo is what /login and /session answer.
type SessionInfo struct {
	Username        string `json:"username"`
	DisplayName     string `json:"display_name"`
	Role            Role   `json:"role"`
	MustChange      bool   `json:"must_change_password"`
	PasswordExpired bool   `json:"password_expired"`
	CSRFToken       string `json:"csrf_token"`
	IdleTimeoutSec  int    `json:"idle_timeout_seconds"`
}

func (m *Manager) info(s Session) SessionInfo {
	return SessionInfo{
		Username: s.User.Username, DisplayName: s.User.DisplayName, Role: s.User.Role,
		MustChange: s.User.MustChange, PasswordExpired: s.User.PasswordExpired,
		CSRFToken: s.CSRF, IdleTimeoutSec: int(m.cfg.IdleTimeout / time.Second),
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads a JSON body, or a form for /login from a plain HTML form.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if p := problem.DecodeJSON(r, v, 16<<10); p != nil {
		problem.Write(w, r, *p)
		return false
	}
	return true
}

// invalidLogin is the one answer to a failed login, whatever the cause.
const invalidLogin = "wrong user name, password or one-time code, or the account is locked after too many failures (try again later or ask the security administrator)"

func (m *Manager) handleLogin(w http.ResponseWriter, r *http.Request) {
	if o := r.Header.Get("Origin"); o != "" && !strings.HasSuffix(o, "://"+r.Host) {
		problem.Write(w, r, problem.CSRFFailed())
		return
	}
	var in struct {
		Username string `json:"username"`
		Password string `json:"password"`
		OTP      string `json:"otp"`
	}
	if isForm(r) {
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		m.loginForm(w, r, r.PostFormValue("username"), r.PostFormValue("password"))
		return
	}
	if !decode(w, r, &in) {
		return
	}
	s, err := m.LoginWithCode(r.Context(), strings.TrimSpace(in.Username), in.Password, strings.TrimSpace(in.OTP), sourceIP(r))
	switch {
	case errors.Is(err, ErrInvalidCredentials):
		// Unknown, wrong, disabled and locked answer alike (no enumeration).
		problem.Write(w, r, problem.Unauthenticated(invalidLogin))
		return
	case errors.Is(err, ErrThrottled):
		problem.Write(w, r, problem.RateLimited(int(ipWindowLen/time.Second)))
		return
	case busy(err):
		m.log.Warn("console login refused: the state store is busy", "err", err)
		problem.Write(w, r, busyProblem(err))
		return
	case err != nil:
		m.log.Error("console login failed", "err", err)
		problem.Write(w, r, problem.Internal(err))
		return
	}
	m.setCookie(w, s.Token)
	writeJSON(w, http.StatusOK, m.info(s))
}

func (m *Manager) handleLogout(w http.ResponseWriter, r *http.Request) {
	s, _ := SessionFrom(r.Context())
	if err := m.Logout(r.Context(), s, sourceIP(r)); err != nil {
		problem.Write(w, r, problem.Internal(err))
		return
	}
	m.clearCookie(w)
	w.WriteHeader(http.StatusNoContent)
}

func (m *Manager) handleSession(w http.ResponseWriter, r *http.Request) {
	s, _ := SessionFrom(r.Context())
	writeJSON(w, http.StatusOK, m.info(s))
}

func (m *Manager) actor(r *http.Request) Actor {
	u, _ := UserFrom(r.Context())
	return Actor{Name: "user:" + u.Username, SourceIP: sourceIP(r), RequestID: r.Header.Get(problem.RequestIDHeader)}
}

func (m *Manager) handlePassword(w http.ResponseWriter, r *http.Request) {
	if isForm(r) {
		m.passwordForm(w, r)
		return
	}
	var in struct {
		Old string `json:"old_password"`
		New string `json:"new_password"`
	}
	if !decode(w, r, &in) {
		return
	}
	s, _ := SessionFrom(r.Context())
	err := m.ChangePassword(r.Context(), m.actor(r), s.User.Username, in.Old, in.New, s.Token)
	var pe *PolicyError
	switch {
	case errors.As(err, &pe):
		problem.Write(w, r, problem.PasswordPolicy(pe.Reasons...))
	case errors.Is(err, ErrInvalidCredentials):
		problem.Write(w, r, problem.ValidationFailed(problem.FieldError{Field: "old_password", Reason: "wrong current password"}))
	case err != nil:
		problem.Write(w, r, problem.Internal(err))
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func (m *Manager) handleListUsers(w http.ResponseWriter, r *http.Request) {
	us, err := m.List(r.Context())
	if err != nil {
		problem.Write(w, r, problem.Internal(err))
		return
	}
	if us == nil {
		us = []User{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": us})
}

func (m *Manager) handleCreateUser(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Username    string `json:"username"`
		DisplayName string `json:"display_name"`
		Role        string `json:"role"`
	}
	if !decode(w, r, &in) {
		return
	}
	role, err := ParseRole(in.Role)
	if err != nil {
		problem.Write(w, r, problem.ValidationFailed(problem.FieldError{Field: "role", Reason: "want operator, security-admin or auditor"}))
		return
	}
	otp, err := m.CreateUser(r.Context(), m.actor(r), in.Username, in.DisplayName, role)
	switch {
	case errors.Is(err, ErrUsername):
		problem.Write(w, r, problem.ValidationFailed(problem.FieldError{Field: "username", Reason: "3-32 characters of a-z 0-9 . _ -, starting with a letter"}))
	case errors.Is(err, ErrExists):
		problem.Write(w, r, problem.Conflict("the user name is taken"))
	case err != nil:
		problem.Write(w, r, problem.Internal(err))
	default:
		writeJSON(w, http.StatusCreated, map[string]string{"username": in.Username, "one_time_password": otp})
	}
}

func (m *Manager) handleUserOp(w http.ResponseWriter, r *http.Request) {
	name, op := r.PathValue("name"), r.PathValue("op")
	actor := m.actor(r)
	var err error
	var otp string
	switch op {
	case "disable":
		if u, _ := UserFrom(r.Context()); u.Username == name {
			problem.Write(w, r, problem.Conflict("you cannot disable your own account"))
			return
		}
		err = m.SetDisabled(r.Context(), actor, name, true)
	case "enable":
		err = m.SetDisabled(r.Context(), actor, name, false)
	case "unlock":
		err = m.Unlock(r.Context(), actor, name)
	case "reset-password":
		otp, err = m.ResetPassword(r.Context(), actor, name)
	default:
		problem.Write(w, r, problem.NotFound("no such account operation"))
		return
	}
	switch {
	case errors.Is(err, ErrNotFound):
		problem.Write(w, r, problem.NotFound("no such user"))
	case errors.Is(err, ErrLastSecurityAdmin):
		problem.Write(w, r, problem.Conflict("this is the last active security administrator"))
	case err != nil:
		problem.Write(w, r, problem.Internal(err))
	case otp != "":
		writeJSON(w, http.StatusOK, map[string]string{"username": name, "one_time_password": otp})
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
