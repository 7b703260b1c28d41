package accounts

import (
	"errors"
	"html/template"
	"net/http"
	"strconv"
	"strings"
)

// The minimal HTML pages for browsers: login and password change. They post
// plain forms (no script), so they work with a strict Content-Security-Policy.
var pages = template.Must(template.New("").Parse(`
{{define "head"}}<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mzhub · {{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:22rem;margin:4rem auto;padding:0 1rem}
label{display:block;margin:.8rem 0 .2rem}input{width:100%;padding:.4rem;box-sizing:border-box}
button{margin-top:1rem;padding:.5rem 1.2rem}.err{color:#b00020}.note{color:#555;font-size:.9rem}</style>
</head><body><h1>{{.Title}}</h1>{{if .Error}}<p class="err" role="alert">{{.Error}}</p>{{end}}{{end}}
{{define "login"}}{{template "head" .}}
<form method="post" action="login" autocomplete="off">
<label for="u">用户名 User name</label><input id="u" name="username" required autofocus value="{{.Username}}">
<label for="p">密码 Password</label><input id="p" name="password" type="password" required>
<label for="otp">动态口令 One-time code (if enrolled)</label><input id="otp" name="otp" inputmode="numeric" autocomplete="one-time-code" maxlength="6">
<button type="submit">登录 Log in</button></form></body></html>{{end}}
{{define "password"}}{{template "head" .}}
<p class="note">{{.Note}}</p>
<form method="post" action="password" autocomplete="off">
<input type="hidden" name="csrf_token" value="{{.CSRF}}">
<label for="o">当前密码 Current password</label><input id="o" name="old_password" type="password" required autofocus>
<label for="n">新密码 New password</label><input id="n" name="new_password" type="password" required>
<p class="note">{{.Policy}}</p>
<button type="submit">修改 Change</button></form></body></html>{{end}}
`))

type pageData struct {
	Title, Error, Username, CSRF, Note, Policy string
}

func isForm(r *http.Request) bool {
	return strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded")
}

func (m *Manager) render(w http.ResponseWriter, status int, name string, d pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, d); err != nil {
		m.log.Error("render account page", "page", name, "err", err)
	}
}

// seeOther redirects with a relative Location, which the browser resolves
// against the page it posted from, wherever the handler is mounted.
func seeOther(w http.ResponseWriter, location string) {
	w.Header().Set("Location", location)
	w.WriteHeader(http.StatusSeeOther)
}

func (m *Manager) handleLoginPage(w http.ResponseWriter, r *http.Request) {
	m.render(w, http.StatusOK, "login", pageData{Title: "mzhub 登录"})
}

func (m *Manager) policyText() string {
	return "至少 " + strconv.Itoa(m.cfg.PasswordMinLength) + " 个字符，含大写、小写、数字、符号中的至少 " + strconv.Itoa(m.cfg.PasswordMinClasses) + " 类 · at least " +
		strconv.Itoa(m.cfg.PasswordMinLength) + " characters with " + strconv.Itoa(m.cfg.PasswordMinClasses) + " of upper case, lower case, digits, symbols"
}

// loginForm handles a form login from the login page.
func (m *Manager) loginForm(w http.ResponseWriter, r *http.Request, username, password string) {
	s, err := m.LoginWithCode(r.Context(), strings.TrimSpace(username), password, strings.TrimSpace(r.PostFormValue("otp")), sourceIP(r))
	switch {
	case errors.Is(err, ErrThrottled):
		m.render(w, http.StatusTooManyRequests, "login", pageData{Title: "mzhub 登录", Username: username, Error: "失败次数过多，请稍后再试 · too many failed logins, try again later"})
		return
	case errors.Is(err, ErrInvalidCredentials):
		m.render(w, http.StatusUnauthorized, "login", pageData{Title: "mzhub 登录", Username: username, Error: "用户名或密码错误，或账户因多次失败已锁定 · " + invalidLogin})
		return
	case busy(err):
		m.log.Warn("console login refused: the state store is busy", "err", err)
		w.Header().Set("Retry-After", "1")
		m.render(w, http.StatusServiceUnavailable, "login", pageData{Title: "mzhub 登录", Username: username, Error: busyText})
		return
	case err != nil:
		m.log.Error("console login failed", "err", err)
		m.render(w, http.StatusInternalServerError, "login", pageData{Title: "mzhub 登录", Error: "内部错误 · internal error"})
		return
	}
	m.setCookie(w, s.Token)
	if s.User.MustChange || s.User.PasswordExpired {
		seeOther(w, "password")
		return
	}
	seeOther(w, m.homePath)
}

func (m *Manager) handlePasswordPage(w http.ResponseWriter, r *http.Request) {
	s, _ := SessionFrom(r.Context())
	note := ""
	switch {
	case s.User.MustChange:
		note = "首次登录须修改一次性密码 · change your one-time password"
	case s.User.PasswordExpired:
		note = "密码已过期 · your password has expired"
	}
	m.render(w, http.StatusOK, "password", pageData{Title: "修改密码", CSRF: s.CSRF, Note: note, Policy: m.policyText()})
}

// passwordForm handles the password page's form.
func (m *Manager) passwordForm(w http.ResponseWriter, r *http.Request) {
	s, _ := SessionFrom(r.Context())
	err := m.ChangePassword(r.Context(), m.actor(r), s.User.Username, r.PostFormValue("old_password"), r.PostFormValue("new_password"), s.Token)
	var pe *PolicyError
	d := pageData{Title: "修改密码", CSRF: s.CSRF, Policy: m.policyText()}
	switch {
	case errors.As(err, &pe):
		d.Error = "新密码不符合要求 · " + strings.Join(pe.Reasons, "; ")
		m.render(w, http.StatusUnprocessableEntity, "password", d)
	case errors.Is(err, ErrInvalidCredentials):
		d.Error = "当前密码错误 · wrong current password"
		m.render(w, http.StatusUnprocessableEntity, "password", d)
	case err != nil:
		m.log.Error("console password change failed", "err", err)
		d.Error = "内部错误 · internal error"
		m.render(w, http.StatusInternalServerError, "password", d)
	default:
		seeOther(w, m.homePath)
	}
}

// Guard is the console's auth middleware: a valid session (Middleware)
// and one of roles (RequireRole, audited).
func (m *Manager) Guard(roles ...Role) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return m.Middleware(m.RequireRole(roles...)(next))
	}
}

// RequestUser names the logged-in console user of a request ("" when none);
// it fits monitor/console's Deps.User.
func RequestUser(r *http.Request) string {
	u, _ := UserFrom(r.Context())
	return u.Username
}
