package verification

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/problem"
)

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"yuan": household.FormatYuan,
	"pct":  func(f float64) string { return fmt.Sprintf("%.1f%%", f*100) },
	"dur":  func(d time.Duration) string { return d.Round(time.Millisecond).String() },
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.In(shanghai()).Format("2006-01-02 15:04:05")
	},
	"safeLink": func(s string) template.URL {
		if strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://") {
			return template.URL(s)
		}
		return ""
	},
}).Parse(`{{define "head"}}<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>{{.}} — mzhub</title>
<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left}
.error{color:#b00}.warning{color:#a60}.ok{color:#070}</style></head><body>
<p><a href="/console/">控制台 Console</a> › <a href="/console/verification/">核对 Verification</a></p>{{end}}
{{define "index"}}{{template "head" "核对 Verification"}}<meta name="csrf-token" content="{{.CSRF}}">
<h1>居民经济状况核对 Household verification</h1>
<h2>数据质量 Data quality (last {{.Hours}} h) <small><a href="report.csv?hours={{.Hours}}">report.csv</a></small></h2>
<table><tr><th>partner</th><th>calls</th><th>answered</th><th>review</th><th>rejected</th><th>incomplete</th><th>format</th><th>stale</th><th>slow</th><th>duplicate</th><th>late</th><th>failed</th><th>open</th><th>sampled</th><th>bad share</th><th>p50</th><th>p95</th></tr>
{{range .Quality}}<tr><td>{{.Partner}}</td><td>{{.Calls}}</td><td>{{.Answered}}</td><td>{{.Review}}</td><td>{{.Rejected}}</td><td>{{.Incomplete}}</td><td>{{.Format}}</td><td>{{.Stale}}</td><td>{{.Slow}}</td><td>{{.Duplicate}}</td><td>{{.Late}}</td><td>{{.Failed}}</td><td>{{.Open}}</td><td>{{.Sampled}}</td><td class="{{if gt .BadShare $.Alert}}error{{else}}ok{{end}}">{{pct .BadShare}}</td><td>{{dur .P50}}</td><td>{{dur .P95}}</td></tr>
{{else}}<tr><td colspan="17">no calls</td></tr>{{end}}</table>
<h2>抽检 Answers awaiting review ({{len .Reviews}})</h2>
<table><tr><th>call</th><th>request</th><th>partner</th><th>answered</th><th>facts</th><th></th></tr>
{{range .Reviews}}<tr><td>{{.CallID}}</td><td><a href="requests/{{.RequestID}}">{{.RequestID}}</a></td><td>{{.Partner}}</td><td>{{when .AnsweredAt}}</td>
<td>{{range .Facts}}{{.IDNumber}} {{.Kind}} {{yuan .AmountFen}} {{.Source}}<br>{{end}}</td>
<td>{{if $.CanAct}}<form method="post" action="reviews/{{.CallID}}"><input type="hidden" name="csrf_token" value="{{$.CSRF}}">
<input name="note" placeholder="note"><button name="decision" value="accept">accept</button><button name="decision" value="reject">reject</button></form>{{end}}</td></tr>
{{else}}<tr><td colspan="6">none</td></tr>{{end}}</table>
<h2>跨省 Cross-province exchanges (last {{.Hours}} h)</h2>
<table><tr><th>province</th><th>direction</th><th>received</th><th>returned</th><th>open</th><th>late</th><th>avg turnaround</th><th>max turnaround</th></tr>
{{range .Provinces}}<tr><td>{{.Province}}</td><td>{{if eq .Direction "in"}}in (asked Shanghai){{else}}out (Shanghai asked){{end}}</td><td>{{.Received}}</td><td>{{.Returned}}</td><td>{{.Open}}</td><td>{{.Late}}</td><td>{{dur .AvgTurnaround}}</td><td>{{dur .MaxTurnaround}}</td></tr>
{{else}}<tr><td colspan="8">none</td></tr>{{end}}</table>
<h2>Recent requests</h2>
<table><tr><th>request</th><th>origin</th><th>status</th><th>created</th></tr>
{{range .Recent}}<tr><td><a href="requests/{{.ID}}">{{.ID}}</a></td><td>{{if .Origin}}province {{.Origin}}{{else}}verification centre{{end}}</td><td>{{.Status}}</td><td>{{when .CreatedAt}}</td></tr>{{end}}</table>
</body></html>{{end}}
{{define "request"}}{{template "head" .ID}}
<h1>{{.ID}} <small>{{.Status}}{{if .Complete}}, complete{{end}}</small></h1>
<p>household {{.Household}}, created {{when .CreatedAt}}, final {{when .FinalAt}}; monthly income {{yuan .MonthlyIncomeFen}} yuan, assets {{yuan .AssetsFen}} yuan</p>
<h2>Members</h2>
<table><tr><th>member</th><th>relation</th><th>monthly income</th><th>evidence</th><th>assets</th><th>facts</th></tr>
{{range .Members}}<tr><td>{{.Name}} {{.IDNumber}}</td><td>{{.Relation}}</td><td>{{yuan .MonthlyIncomeFen}}</td><td>{{yuan .EvidenceFen}}</td><td>{{yuan .AssetsFen}}</td>
<td>{{range .Facts}}{{.Partner}}: {{.Kind}} {{yuan .AmountFen}} {{.Source}} {{.Period}}{{with safeLink .Link}} <a href="{{.}}" target="_blank" rel="noopener noreferrer">attachment at the bank</a>{{end}}<br>{{end}}</td></tr>{{end}}</table>
<h2>Partners</h2>
<table><tr><th>partner</th><th>scope</th><th>state</th><th>quality</th><th>reason</th><th>asks</th><th>lookups</th><th>answered</th></tr>
{{range .Partners}}<tr><td>{{.Partner}}</td><td>{{.Scope}}</td><td class="{{if or (eq .State "rejected") (eq .State "failed")}}error{{else if eq .State "late"}}warning{{end}}">{{.State}}</td><td>{{range .Quality}}{{.}} {{end}}</td><td>{{.Reason}}</td><td>{{.Asks}}</td><td>{{.Lookups}}</td><td>{{when .AnsweredAt}}</td></tr>{{end}}</table>
</body></html>{{end}}`))

func shanghai() *time.Location {
	if l, err := time.LoadLocation("Asia/Shanghai"); err == nil {
		return l
	}
	return time.FixedZone("CST", 8*3600)
}

// RecentRequest is a line of the console's recent requests.
type RecentRequest struct {
	// ID, Origin and Status of the request.
	ID, Origin, Status string
	// CreatedAt is when it was stored.
	CreatedAt time.Time
}

// Recent lists the newest requests.
func (s *Service) Recent(ctx context.Context, limit int) ([]RecentRequest, error) {
	d := s.deps.DB
	rows, err := d.QueryContext(ctx, d.Rebind(`SELECT id, origin, status, created_ms FROM verif_requests ORDER BY created_ms DESC LIMIT ?`), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []RecentRequest
	for rows.Next() {
		var x RecentRequest
		var c int64
		if err := rows.Scan(&x.ID, &x.Origin, &x.Status, &c); err != nil {
			return nil, err
		}
		x.CreatedAt = fromMS(c)
		out = append(out, x)
	}
	return out, rows.Err()
}

// ConsoleHandler serves the console's verification pages (mounted under
// /console/verification behind the console's login, role and CSRF guard):
//
//	GET  /                     data quality per partner, review queue, cross-province statistics, recent requests
//	GET  /report.csv?hours=N   the quality report as a file
//	GET  /requests/{id}        one request's aggregate, partners and attachment links
//	POST /reviews/{call}       decision=accept|reject, note: a manual review (operators)
//
// user names the logged-in user; canAct tells whether the user may review;
// csrf returns the session's token for forms.
func (s *Service) ConsoleHandler(user func(*http.Request) string, canAct func(*http.Request) bool, csrf func(*http.Request) string) http.Handler {
	mux := http.NewServeMux()
	hours := func(r *http.Request) int {
		h, err := strconv.Atoi(r.URL.Query().Get("hours"))
		if err != nil || h <= 0 || h > 24*366 {
			return 24
		}
		return h
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		h := hours(r)
		to := s.clock.Now()
		from := to.Add(-time.Duration(h) * time.Hour)
		q, err := s.Report(r.Context(), from, to.Add(time.Second))
		if err != nil {
			problem.Write(w, r, problem.Internal(err))
			return
		}
		rv, err := s.Reviews(r.Context(), 50)
		if err != nil {
			problem.Write(w, r, problem.Internal(err))
			return
		}
		ps, err := s.ProvinceStats(r.Context(), from, to.Add(time.Second))
		if err != nil {
			problem.Write(w, r, problem.Internal(err))
			return
		}
		rec, err := s.Recent(r.Context(), 20)
		if err != nil {
			problem.Write(w, r, problem.Internal(err))
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = pages.ExecuteTemplate(w, "index", map[string]any{"Hours": h, "Quality": q, "Reviews": rv, "Provinces": ps, "Recent": rec,
			"CanAct": canAct(r), "CSRF": csrf(r), "Alert": s.cfg.AlertRatio})
	})
	mux.HandleFunc("GET /report.csv", func(w http.ResponseWriter, r *http.Request) {
		to := s.clock.Now()
		q, err := s.Report(r.Context(), to.Add(-time.Duration(hours(r))*time.Hour), to.Add(time.Second))
		if err != nil {
			problem.Write(w, r, problem.Internal(err))
			return
		}
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="verification-quality.csv"`)
		cw := csv.NewWriter(w)
		_ = cw.Write(ReportHeader)
		for _, x := range q {
			_ = cw.Write([]string{x.Partner, itoa(x.Calls), itoa(x.Answered), itoa(x.Review), itoa(x.Rejected), itoa(x.Incomplete), itoa(x.Format),
				itoa(x.Stale), itoa(x.Slow), itoa(x.Duplicate), itoa(x.Late), itoa(x.Failed), itoa(x.Open), itoa(x.Sampled), itoa(x.ReviewRejected),
				fmt.Sprintf("%.4f", x.BadShare()), fmt.Sprint(x.P50.Milliseconds()), fmt.Sprint(x.P95.Milliseconds())})
		}
		cw.Flush()
	})
	mux.HandleFunc("GET /requests/{id}", func(w http.ResponseWriter, r *http.Request) {
		res, err := s.Result(r.Context(), r.PathValue("id"))
		if errors.Is(err, ErrNotFound) {
			problem.Write(w, r, problem.NotFound("no request has this id"))
			return
		}
		if err != nil {
			problem.Write(w, r, problem.Internal(err))
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = pages.ExecuteTemplate(w, "request", res)
	})
	mux.HandleFunc("POST /reviews/{call}", func(w http.ResponseWriter, r *http.Request) {
		if !canAct(r) {
			problem.Write(w, r, problem.Forbidden("only operators review answers"))
			return
		}
		id, err := strconv.ParseInt(r.PathValue("call"), 10, 64)
		d := r.PostFormValue("decision")
		if err != nil || (d != "accept" && d != "reject") {
			problem.Write(w, r, problem.ValidationFailed(problem.FieldError{Field: "decision", Reason: "accept or reject, for a call id"}))
			return
		}
		err = s.Review(r.Context(), id, user(r), d == "accept", r.PostFormValue("note"))
		switch {
		case errors.Is(err, ErrNotFound):
			problem.Write(w, r, problem.NotFound("no such call"))
		case errors.Is(err, ErrNotUnderReview):
			problem.Write(w, r, problem.Problem{Status: http.StatusConflict, Code: problem.CodeConflict, Title: "Not awaiting review", Detail: "the answer was reviewed already"})
		case err != nil:
			problem.Write(w, r, problem.Internal(err))
		default:
			http.Redirect(w, r, "/console/verification/", http.StatusSeeOther)
		}
	})
	return mux
}
