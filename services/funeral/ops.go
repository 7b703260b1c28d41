package funeral

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/monitor/console"
)

// HomeStatus is one partner's line in the operational view.
type HomeStatus struct {
	PartnerID string `json:"partner_id"`
	Name      string `json:"name"`
	Role      Role   `json:"role"`
	// LastSync is when the hub last stored a record of the partner (zero: never).
	LastSync time.Time `json:"last_sync,omitzero"`
	// CallsHour and ErrorsHour count this process's calls in the last hour.
	CallsHour  int64   `json:"calls_hour"`
	ErrorsHour int64   `json:"errors_hour"`
	ErrorRate  float64 `json:"error_rate"`
	// Stale lists halls, vehicles and supplies not updated within StaleAfter.
	Stale []StaleItem `json:"stale,omitempty"`
	// Cremation lists bodies waiting longer than the partner's threshold.
	Cremation []CremationWarning `json:"cremation_warnings,omitempty"`
}

// StaleItem is a resource not updated for long.
type StaleItem struct {
	Kind     string    `json:"kind"`
	ID       string    `json:"id"`
	StoredAt time.Time `json:"stored_at"`
}

// CremationWarning is a body received but not cremated after the threshold.
type CremationWarning struct {
	ID         string    `json:"id"`
	BodyStatus string    `json:"body_status"`
	ReceivedAt time.Time `json:"received_at"`
	DaysWaited int       `json:"days_waited"`
	Threshold  int       `json:"threshold_days"`
}

// Overview is the operational view of all funeral partners.
type Overview struct {
	Environment string       `json:"environment"`
	GeneratedAt time.Time    `json:"generated_at"`
	Partners    []HomeStatus `json:"partners"`
}

// Overview computes the operational view: per partner last sync, error
// rate, stale resources and cremation warnings.
func (a *API) Overview(ctx context.Context) (Overview, error) {
	now := a.clock.Now()
	ov := Overview{Environment: a.cfg.Environment, GeneratedAt: now.In(shanghai)}
	db := a.store.db
	last := map[string]time.Time{}
	rows, err := db.QueryContext(ctx, `SELECT partner_id, MAX(stored_at) FROM funeral_records GROUP BY partner_id`)
	if err != nil {
		return ov, fmt.Errorf("funeral: overview: %w", err)
	}
	for rows.Next() {
		var id string
		var ms int64
		if err := rows.Scan(&id, &ms); err != nil {
			rows.Close()
			return ov, err
		}
		last[id] = time.UnixMilli(ms).In(shanghai)
	}
	rows.Close()
	stale := map[string][]StaleItem{}
	rows, err = db.QueryContext(ctx, db.Rebind(`SELECT partner_id, kind, record_id, stored_at FROM funeral_records
		WHERE deleted = 0 AND kind IN ('hall', 'vehicle', 'supply') AND stored_at < ? ORDER BY stored_at`), now.Add(-a.cfg.StaleAfter).UnixMilli())
	if err != nil {
		return ov, fmt.Errorf("funeral: overview: %w", err)
	}
	for rows.Next() {
		var pid string
		var it StaleItem
		var ms int64
		if err := rows.Scan(&pid, &it.Kind, &it.ID, &ms); err != nil {
			rows.Close()
			return ov, err
		}
		it.StoredAt = time.UnixMilli(ms).In(shanghai)
		stale[pid] = append(stale[pid], it)
	}
	rows.Close()
	minDays := a.cfg.CremationWarnDays
	for _, p := range a.partners.Partners() {
		if p.CremationWarnDays > 0 && p.CremationWarnDays < minDays {
			minDays = p.CremationWarnDays
		}
	}
	crem := map[string][]CremationWarning{}
	rows, err = db.QueryContext(ctx, db.Rebind(`SELECT partner_id, record_id, status, ref_at FROM funeral_records
		WHERE kind = 'deceased' AND deleted = 0 AND status IN ('received', 'stored', 'farewell') AND ref_at > 0 AND ref_at < ? ORDER BY ref_at`),
		now.Add(-time.Duration(minDays)*24*time.Hour).UnixMilli())
	if err != nil {
		return ov, fmt.Errorf("funeral: overview: %w", err)
	}
	for rows.Next() {
		var pid string
		var w CremationWarning
		var ms int64
		if err := rows.Scan(&pid, &w.ID, &w.BodyStatus, &ms); err != nil {
			rows.Close()
			return ov, err
		}
		w.ReceivedAt = time.UnixMilli(ms).In(shanghai)
		w.DaysWaited = int(now.Sub(w.ReceivedAt) / (24 * time.Hour))
		w.Threshold = a.cfg.CremationWarnDays
		if p, ok := a.partners.Partner(pid); ok && p.CremationWarnDays > 0 {
			w.Threshold = p.CremationWarnDays
		}
		if w.DaysWaited >= w.Threshold {
			crem[pid] = append(crem[pid], w)
		}
	}
	rows.Close()
	for _, p := range a.partners.Partners() {
		if !p.Allowed(a.cfg.Environment) && last[p.ID].IsZero() {
			continue
		}
		calls, errs, _ := a.stats.hour(p.ID, now)
		hs := HomeStatus{PartnerID: p.ID, Name: p.Name, Role: p.Role, LastSync: last[p.ID], CallsHour: calls, ErrorsHour: errs,
			Stale: stale[p.ID], Cremation: crem[p.ID]}
		if calls > 0 {
			hs.ErrorRate = float64(errs) / float64(calls)
		}
		ov.Partners = append(ov.Partners, hs)
	}
	sort.Slice(ov.Partners, func(i, j int) bool { return ov.Partners[i].PartnerID < ov.Partners[j].PartnerID })
	return ov, nil
}

var opsPage = template.Must(template.New("ops").Funcs(template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.In(shanghai).Format("2006-01-02 15:04:05")
	},
	"pct": func(f float64) string { return fmt.Sprintf("%.1f%%", f*100) },
}).Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>Funeral partners 殡葬数据交换</title></head>
<body>
<h1>Funeral partners 殡葬数据交换 ({{.Environment}})</h1>
<p>Generated {{when .GeneratedAt}} (Asia/Shanghai)</p>
<table border="1" cellpadding="4">
<tr><th>Partner</th><th>Role</th><th>Last sync 最近同步</th><th>Calls (1h)</th><th>Error rate 错误率</th><th>Stale 过期资源</th><th>Cremation warnings 火化预警</th></tr>
{{range .Partners}}<tr>
<td>{{.PartnerID}}<br>{{.Name}}</td><td>{{.Role}}</td><td>{{when .LastSync}}</td><td>{{.CallsHour}}</td><td>{{pct .ErrorRate}}</td>
<td>{{len .Stale}}{{range .Stale}}<br>{{.Kind}} {{.ID}}{{end}}</td>
<td>{{len .Cremation}}{{range .Cremation}}<br>{{.ID}}: {{.BodyStatus}}, {{.DaysWaited}} d (≥ {{.Threshold}}){{end}}</td>
</tr>{{end}}
</table>
</body></html>
`))

// opsFragment is the operational view inside the console's layout (the
// console's dictionary names every label; see console.Mount).
var opsFragment = template.Must(template.New("ops").Funcs(template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.In(shanghai).Format("2006-01-02 15:04:05")
	},
	"pct": func(f float64) string { return fmt.Sprintf("%.1f%%", f*100) },
}).Parse(`{{$f := .F}}<p>{{$f.T "fun_environment"}}: <b>{{$f.T (print "fun_" .O.Environment)}}</b></p>
<table class="funeral">
<tr><th>{{$f.T "partner"}}</th><th>{{$f.T "fun_role"}}</th><th>{{$f.T "fun_last_sync"}}</th><th>{{$f.T "fun_calls_1h"}}</th><th>{{$f.T "fun_error_rate"}}</th><th>{{$f.T "fun_stale"}}</th><th>{{$f.T "fun_cremation"}}</th></tr>
{{range .O.Partners}}<tr class="{{if or .Cremation (gt .ErrorRate 0.2)}}red{{else if or .Stale (gt .ErrorRate 0.0)}}amber{{else if .LastSync.IsZero}}grey{{end}}" data-partner="{{.PartnerID}}">
<td title="{{.PartnerID}}">{{or .Name ($f.Partner .PartnerID)}}</td><td>{{$f.T (print "fun_role_" .Role)}}</td><td>{{when .LastSync}}</td><td class="num">{{.CallsHour}}</td><td class="num">{{pct .ErrorRate}}</td>
<td>{{len .Stale}}{{range .Stale}}<br>{{$f.T (print "fun_kind_" .Kind)}} {{.ID}}{{end}}</td>
<td>{{len .Cremation}}{{range .Cremation}}<br>{{.ID}}: {{$f.T (print "fun_body_" .BodyStatus)}}, {{.DaysWaited}} {{$f.T "fun_days"}} (≥ {{.Threshold}}){{end}}</td>
</tr>{{else}}<tr><td colspan="7">{{$f.T "no_results"}}</td></tr>{{end}}
</table>
`))

// OpsHandler serves the operational view: HTML for browsers, JSON when the
// request accepts application/json or asks ?format=json. The console mounts
// it (for example at /console/funeral/).
func (a *API) OpsHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ov, err := a.Overview(r.Context())
		if err != nil {
			a.log.Error("funeral overview", "err", err)
			http.Error(w, "overview unavailable", http.StatusInternalServerError)
			return
		}
		if r.URL.Query().Get("format") == "json" || strings.Contains(r.Header.Get("Accept"), "application/json") {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(ov)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if f, ok := console.FrameFrom(r.Context()); ok {
			_ = opsFragment.Execute(w, struct {
				F *console.Frame
				O Overview
			}{f, ov})
			return
		}
		_ = opsPage.Execute(w, ov)
	})
}
