package console

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/audit"
	idmask "github.com/shanghai-mca/mzhub/security/mask"
)

//go:embed assets
var assets embed.FS

// Deps is what the console needs. Store is required; the rest may be nil.
type Deps struct {
	// Store answers the queries.
	Store monitor.Store
	// Clock tells the time; nil is the real clock.
	Clock clock.Clock
	// Logger reports handler errors; nil discards.
	Logger *slog.Logger
	// Auth wraps every console handler (security's RequireRole middleware);
	// nil leaves the console open, for tests and the demo only.
	Auth func(http.Handler) http.Handler
	// User names the logged-in user of a request (from security's session).
	// When nil, action forms ask for the operator's name, and the audit
	// record marks it as self-declared.
	User func(*http.Request) string
	// CanAct tells whether the request's user may act (retry, replay, drop,
	// acknowledge, resolve); nil lets every user who passed Auth act. Use
	// it to keep auditors read-only.
	CanAct func(*http.Request) bool
	// Schedules and Thresholds drive the health matrix.
	Schedules  []monitor.FlowSchedule
	Thresholds monitor.Thresholds
	// StuckAfter marks a batch stage as stuck when its newest event is older
	// and it did not finish (0: 2 hours).
	StuckAfter time.Duration
	// Actions retries, replays and drops dead letters; nil hides the buttons.
	Actions monitor.DeadLetterActions
	// Auditor records every action; nil refuses actions (they must be audited).
	Auditor audit.Appender
	// Alerts is the alert inbox; nil hides it.
	Alerts Alerts
	// Expectations lists expected files; nil hides the calendar.
	Expectations Expectations
	// Quality builds the data-quality report; nil hides it.
	Quality Quality
	// Cycles are the allowance cycles operators start, confirm and resume
	// on the batches page; nil hides them.
	Cycles Cycles
	// CSRF returns the request's session CSRF token, which every action
	// form carries in the field csrf_token (security/accounts checks it);
	// nil when no login is configured (then forms carry none).
	CSRF func(*http.Request) string
	// Accounts are the failed account openings operators correct and
	// retry (开户失败); nil hides the page.
	Accounts AccountFailures
	// Topology draws the running hub's topology with live numbers; nil
	// hides the page.
	Topology Topology
	// PartnerName names a partner in zh-CN from a registry (the funeral
	// homes' own names); nil or a miss falls back to the dictionary.
	PartnerName func(id string) (string, bool)
}

// Console serves the pages.
type Console struct {
	d     Deps
	log   *slog.Logger
	pages map[string]*template.Template
	mux   *http.ServeMux

	mu       sync.RWMutex
	sections []navItem

	// memo keeps the overview's batch events between refreshes.
	memoMu sync.Mutex
	memo   map[string]batchMemo
}

type navItem struct{ Key, Path string }

// New builds the console handler. Mount it under a prefix with
// http.StripPrefix, e.g. mux.Handle("/console/", http.StripPrefix("/console", c)).
func New(d Deps) (*Console, error) {
	if d.Store == nil {
		return nil, fmt.Errorf("console: a store is required")
	}
	if d.Clock == nil {
		d.Clock = clock.Real{}
	}
	if d.StuckAfter <= 0 {
		d.StuckAfter = 2 * time.Hour
	}
	c := &Console{d: d, log: d.Logger, pages: map[string]*template.Template{}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	for _, p := range []string{"overview", "health", "search", "exchange", "batches", "failures", "confirm", "alerts", "calendar", "charts", "quality", "topology", "notfound", "section", "screen", "accounts"} {
		t, err := template.New(p).Funcs(funcs).ParseFS(assets, "assets/layout.tmpl", "assets/events.tmpl", "assets/"+p+".tmpl")
		if err != nil {
			return nil, fmt.Errorf("console: parse %s: %w", p, err)
		}
		c.pages[p] = t
	}
	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.HandlerFunc(c.static)))
	mux.HandleFunc("GET /{$}", c.overview)
	mux.HandleFunc("GET /matrix", c.health)
	mux.HandleFunc("GET /screen", c.screen)
	mux.HandleFunc("/", c.notFound)
	mux.HandleFunc("GET /search", c.search)
	mux.HandleFunc("GET /exchange/{id}", c.exchange)
	mux.HandleFunc("GET /batches", c.batches)
	mux.HandleFunc("POST /batches/start", c.cycleStart)
	mux.HandleFunc("POST /batches/{kind}/{period}/{action}", c.cycleAction)
	mux.HandleFunc("GET /failures", c.failures)
	mux.HandleFunc("POST /failures/{action}", c.deadLetterAction)
	mux.HandleFunc("GET /alerts", c.alerts)
	mux.HandleFunc("POST /alerts/{id}/{action}", c.alertAction)
	mux.HandleFunc("GET /calendar", c.calendar)
	mux.HandleFunc("GET /charts", c.charts)
	mux.HandleFunc("GET /quality", c.quality)
	mux.HandleFunc("GET /quality/report/{format}", c.qualityReport)
	if d.Topology != nil {
		mux.HandleFunc("GET /topology", c.topology)
	}
	mux.HandleFunc("GET /accounts", c.accountFailures)
	mux.HandleFunc("POST /accounts/{ref}/retry", c.accountRetry)
	c.mux = mux
	return c, nil
}

// ServeHTTP serves the console behind the auth middleware and the
// cross-origin protection of net/http (no cross-site form posts).
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var h http.Handler = c.mux
	h = http.NewCrossOriginProtection().Handler(h)
	h = securityHeaders(h)
	if c.d.Auth != nil {
		h = c.d.Auth(h)
	}
	h.ServeHTTP(w, r)
}

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

func (c *Console) static(w http.ResponseWriter, r *http.Request) {
	types := map[string]string{"console.css": "text/css; charset=utf-8", "screen.js": "text/javascript; charset=utf-8"}
	ct, ok := types[r.URL.Path]
	if !ok {
		c.notFound(w, r)
		return
	}
	b, _ := assets.ReadFile("assets/" + r.URL.Path)
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "max-age=3600")
	_, _ = w.Write(b)
}

// page is what every template gets.
type page struct {
	L     int
	Title string
	Base  string
	Nav   []navItem
	Now   time.Time
	Flash string
	CSRF  string
	Data  any
	// Refresh reloads the page after that many seconds (0: never).
	Refresh int
	// Body is a section's content (see Mount).
	Body    template.HTML
	start   time.Time
	query   url.Values
	console *Console
	names   func(string) (string, bool)
	missing map[string]bool
}

// T translates a message key; a key the dictionary lacks shows as itself
// and is listed as untranslated.
func (p *page) T(key string) string {
	if m, ok := messages[key]; ok {
		return m[p.L]
	}
	p.miss("msg:" + key)
	return key
}

// LangQuery is the query string switching to the other language.
func (p *page) LangQuery() string {
	q := url.Values{}
	for k, v := range p.query {
		q[k] = v
	}
	if p.L == 1 {
		q.Set("lang", "zh")
	} else {
		q.Set("lang", "en")
	}
	return q.Encode()
}

// Elapsed is the time spent rendering so far.
func (p *page) Elapsed() string { return time.Since(p.start).Round(time.Millisecond).String() }

func (c *Console) newPage(w http.ResponseWriter, r *http.Request, title string) *page {
	nav := []navItem{{"nav_overview", ""}, {"nav_health", "matrix"}}
	if c.d.Expectations != nil {
		nav = append(nav, navItem{"nav_calendar", "calendar"})
	}
	nav = append(nav, navItem{"nav_batches", "batches"})
	if c.d.Accounts != nil {
		nav = append(nav, navItem{"nav_accounts", "accounts"})
	}
	nav = append(nav, navItem{"nav_search", "search"}, navItem{"nav_failures", "failures"})
	if c.d.Alerts != nil {
		nav = append(nav, navItem{"nav_alerts", "alerts"})
	}
	nav = append(nav, navItem{"nav_charts", "charts"})
	if c.d.Quality != nil {
		nav = append(nav, navItem{"nav_quality", "quality"})
	}
	if c.d.Topology != nil {
		nav = append(nav, navItem{"nav_topology", "topology"})
	}
	c.mu.RLock()
	nav = append(nav, c.sections...)
	c.mu.RUnlock()
	nav = append(nav, navItem{"nav_screen", "screen"})
	q := r.URL.Query()
	q.Del("lang")
	p := &page{L: lang(w, r), Title: title, Base: basePath(r), Nav: nav, Now: c.d.Clock.Now(),
		start: time.Now(), query: q, console: c, Flash: r.URL.Query().Get("flash"), names: c.d.PartnerName}
	if c.d.CSRF != nil {
		p.CSRF = c.d.CSRF(r)
	}
	return p
}

// basePath is the console's mount point as the browser sees it, so links
// work under any prefix: the part of the original path before the route.
func basePath(r *http.Request) string {
	// Compare escaped with escaped: an id with an encoded slash
	// (exchange/a%2Fb) must not lose the prefix (the page went unstyled).
	full := r.URL.EscapedPath()
	orig := full
	if r.RequestURI != "" {
		if u, err := url.ParseRequestURI(r.RequestURI); err == nil {
			orig = u.EscapedPath()
		}
	}
	if strings.HasSuffix(orig, full) {
		return strings.TrimSuffix(orig, full) + "/"
	}
	return "/"
}

func (c *Console) render(w http.ResponseWriter, p *page, name string) {
	c.renderStatus(w, p, name, http.StatusOK)
}

// renderStatus renders a page with an HTTP status other than 200 (a form
// error is 422, a page naming nothing 404).
func (c *Console) renderStatus(w http.ResponseWriter, p *page, name string, status int) {
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		c.log.Error("console: render", "page", name, "err", err)
		http.Error(w, "render failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (c *Console) fail(w http.ResponseWriter, what string, err error) {
	c.log.Error("console: "+what, "err", err)
	http.Error(w, what+" failed", http.StatusInternalServerError)
}

// notFound answers 404 with a page in the console's layout.
func (c *Console) notFound(w http.ResponseWriter, r *http.Request) {
	p := c.newPage(w, r, "not_found")
	p.Data = r.URL.Path
	c.renderStatus(w, p, "notfound", http.StatusNotFound)
}

// mask is defence in depth: events carry masked values already, but any
// identifier that slipped through is masked by security/mask before display.
func mask(s string) string { return idmask.Text(s) }

var funcs = template.FuncMap{
	"ts": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.In(clock.Shanghai).Format("2006-01-02 15:04:05")
	},
	"day": func(t time.Time) string { return t.In(clock.Shanghai).Format("01-02 15:04") },
	"ago": func(now, t time.Time) string {
		d := now.Sub(t)
		switch {
		case d < time.Minute:
			return strconv.Itoa(int(d.Seconds())) + "s"
		case d < time.Hour:
			return strconv.Itoa(int(d.Minutes())) + "m"
		case d < 48*time.Hour:
			return strconv.Itoa(int(d.Hours())) + "h"
		}
		return strconv.Itoa(int(d.Hours()/24)) + "d"
	},
	"dur": func(d time.Duration) string {
		switch {
		case d == 0:
			return "—"
		case d < time.Second:
			return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
		case d < time.Hour:
			return d.Round(100 * time.Millisecond).String()
		}
		return d.Round(time.Minute).String()
	},
	"pct":   func(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" },
	"yuan":  formatYuan,
	"count": formatCount,
	"mask":  mask,
	"list":  func(s ...string) []string { return s },
	"svg":   func(s string) template.HTML { return template.HTML(s) }, // only our own generated SVG
}
