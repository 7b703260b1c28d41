package portal

import (
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"html/template"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/shanghai-mca/mzhub/connectors/joblib"
	"github.com/shanghai-mca/mzhub/problem"
)

// Handler serves the portal's console page (GET /), its statistics as
// JSON (GET /stats.json, filtered by ?item=&month=&division=), the refused
// records (GET /refused.json) and an operator's decision on a case waiting
// for review (POST /cases/{id}/decision). The hub mounts it under
// /console/portal behind the console's account guard (which checks the CSRF
// token of a POST); canAct says whether the user may decide.
func (s *Service) Handler(user func(*http.Request) string, canAct func(*http.Request) bool, csrf func(*http.Request) string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats.json", func(w http.ResponseWriter, r *http.Request) {
		f, p := filterOf(r)
		if p != nil {
			problem.Write(w, r, *p)
			return
		}
		st, err := s.Stats(r.Context(), f)
		if err != nil {
			problem.Write(w, r, problem.Internal(err))
			return
		}
		writeJSON(w, st)
	})
	mux.HandleFunc("GET /refused.json", func(w http.ResponseWriter, r *http.Request) {
		rs, err := s.Refusals(r.Context(), 200)
		if err != nil {
			problem.Write(w, r, problem.Internal(err))
			return
		}
		writeJSON(w, map[string]any{"refused": rs})
	})
	mux.HandleFunc("POST /cases/{id}/decision", func(w http.ResponseWriter, r *http.Request) {
		if canAct != nil && !canAct(r) {
			problem.Write(w, r, problem.Forbidden("only operators decide cases"))
			return
		}
		var in struct {
			Decision string `json:"decision"`
			Reason   string `json:"reason"`
		}
		if strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			if p := problem.DecodeJSON(r, &in, 1<<16); p != nil {
				problem.Write(w, r, *p)
				return
			}
		} else {
			in.Decision, in.Reason = r.PostFormValue("decision"), r.PostFormValue("reason")
		}
		u := ""
		if user != nil {
			u = user(r)
		}
		err := s.Decide(r.Context(), r.PathValue("id"), in.Decision, in.Reason, u)
		switch {
		case errors.Is(err, ErrNoCase):
			problem.Write(w, r, problem.NotFound(err.Error()))
		case errors.Is(err, ErrDecided):
			problem.Write(w, r, problem.Conflict(err.Error()))
		case errors.Is(err, ErrBadRecord):
			problem.Write(w, r, problem.ValidationFailed(problem.FieldError{Field: "decision", Reason: err.Error()}))
		case err != nil:
			problem.Write(w, r, problem.Internal(err))
		default:
			s.Kick()
			writeJSON(w, map[string]string{"case_id": r.PathValue("id"), "decision": in.Decision})
		}
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { s.page(w, r, csrf) })
	return mux
}

func filterOf(r *http.Request) (StatsFilter, *problem.Problem) {
	q := r.URL.Query()
	f := StatsFilter{Item: q.Get("item"), Month: q.Get("month"), Division: q.Get("division")}
	var errs []problem.FieldError
	if f.Item != "" && !itemCodeRE.MatchString(f.Item) {
		errs = append(errs, problem.FieldError{Field: "item", Reason: "not an item code"})
	}
	if f.Month != "" && !joblib.ValidMonth(f.Month) {
		errs = append(errs, problem.FieldError{Field: "month", Reason: "want YYYY-MM"})
	}
	if f.Division != "" && !divisionRE.MatchString(f.Division) {
		errs = append(errs, problem.FieldError{Field: "division", Reason: "not a Shanghai division code"})
	}
	if len(errs) > 0 {
		p := problem.ValidationFailed(errs...)
		return f, &p
	}
	return f, nil
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// Districts names the Shanghai districts by division code.
var Districts = map[string]string{
	"310101": "黄浦", "310104": "徐汇", "310105": "长宁", "310106": "静安", "310107": "普陀", "310109": "虹口",
	"310110": "杨浦", "310112": "闵行", "310113": "宝山", "310114": "嘉定", "310115": "浦东", "310116": "金山",
	"310117": "松江", "310118": "青浦", "310120": "奉贤", "310151": "崇明",
}

var stageNames = map[string]string{"": "待预审 received", joblib.NodePreReview: "预审 pre-review", joblib.NodeAccepted: "受理 accepted",
	joblib.NodeProcessing: "办理 in process", joblib.NodeDone: "办结 done"}

var pageTmpl = template.Must(template.New("portal").Funcs(template.FuncMap{
	"pct":      func(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" },
	"yuan":     func(fen int64) string { return fmt.Sprintf("%d.%02d", fen/100, fen%100) },
	"district": func(c string) string { return Districts[c] + " " + c },
}).Parse(`<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>一网通办 · 办件库与免申即享 · mzhub</title>
<link rel="stylesheet" href="/console/static/console.css"></head>
<body><header><span class="brand">mzhub · 信息交换流程监管</span>
<nav><a href="/console/">总览 Overview</a><a href="/console/charts">图表 Charts</a><a class="active" href="/console/portal/">一网通办 Portal</a></nav></header>
<main id="portal"><h1>一网通办：办件库与免申即享 (one-stop portal: job library and no-application benefits)</h1>
<form method="get" class="filters">
<label>事项 item <select name="item"><option value="">全部 all</option>{{range .Items}}<option value="{{.Code}}"{{if eq .Code $.F.Item}} selected{{end}}>{{.Name}} {{.Code}}</option>{{end}}</select></label>
<label>月份 month <input name="month" value="{{.F.Month}}" placeholder="YYYY-MM" size="8"></label>
<label>区 district <select name="division"><option value="">全部 all</option>{{range .Divs}}<option value="{{.}}"{{if eq . $.F.Division}} selected{{end}}>{{district .}}</option>{{end}}</select></label>
<button>查询 filter</button> <a href="stats.json?item={{.F.Item}}&amp;month={{.F.Month}}&amp;division={{.F.Division}}">JSON</a></form>
<section><h2>免申即享 (per item)</h2>
<table><thead><tr><th>事项 item</th><th>推送 pushed</th><th>确认件 cases</th><th>确认 confirmed</th><th>不予确认 refused</th><th>待审核 review</th><th>兑付 paid</th><th>未兑付 unpaid</th><th>兑付金额 amount (元)</th><th>确认率 confirmation</th><th>兑付率 payout</th></tr></thead>
<tbody>{{range .ByItem}}<tr><td>{{.Item}}</td><td>{{.Pushed}}</td><td>{{.Cases}}</td><td>{{.Confirmed}}</td><td>{{.Refused}}</td><td>{{.Review}}</td><td>{{.Paid}}</td><td>{{.Unpaid}}</td><td>{{yuan .PaidFen}}</td><td>{{pct .ConfirmationRate}}</td><td>{{pct .PayoutRate}}</td></tr>{{else}}<tr><td colspan="11">暂无 none yet</td></tr>{{end}}</tbody></table>
{{.RateChart}}
{{.FlowChart}}</section>
<section><h2>按区 per district</h2>
<table><thead><tr><th>区 district</th><th>推送 pushed</th><th>确认件 cases</th><th>确认 confirmed</th><th>兑付 paid</th><th>确认率</th><th>兑付率</th></tr></thead>
<tbody>{{range .ByDiv}}<tr><td>{{district .Division}}</td><td>{{.Pushed}}</td><td>{{.Cases}}</td><td>{{.Confirmed}}</td><td>{{.Paid}}</td><td>{{pct .ConfirmationRate}}</td><td>{{pct .PayoutRate}}</td></tr>{{end}}</tbody></table></section>
<section><h2>办件 applications (per item and stage)</h2>
<table><thead><tr><th>事项 item</th>{{range .Stages}}<th>{{.}}</th>{{end}}<th>自助终端机 terminal</th><th>合计 total</th></tr></thead>
<tbody>{{range .AppRows}}<tr><td>{{.Item}}</td>{{range .Counts}}<td>{{.}}</td>{{end}}<td>{{.Terminal}}</td><td>{{.Total}}</td></tr>{{else}}<tr><td colspan="8">暂无 none yet</td></tr>{{end}}</tbody></table>
{{.StageChart}}</section>
<section><h2>发送队列 outbox</h2><table><thead><tr><th>类型 kind</th><th>状态 state</th><th>数量 count</th></tr></thead>
<tbody>{{range .S.Outbox}}<tr class="{{.State}}"><td>{{.Kind}}</td><td>{{.State}}</td><td>{{.Count}}</td></tr>{{end}}</tbody></table>
<p>拒收记录 refused records: {{.S.Refused}} · <a href="refused.json">refused.json</a></p></section>
</main></body></html>`))

type appRow struct {
	Item     string
	Counts   []int64
	Terminal int64
	Total    int64
}

func (s *Service) page(w http.ResponseWriter, r *http.Request, _ func(*http.Request) string) {
	f, p := filterOf(r)
	if p != nil {
		problem.Write(w, r, *p)
		return
	}
	st, err := s.Stats(r.Context(), f)
	if err != nil {
		problem.Write(w, r, problem.Internal(err))
		return
	}
	stageOrder := []string{"", joblib.NodePreReview, joblib.NodeAccepted, joblib.NodeProcessing, joblib.NodeDone}
	rows := map[string]*appRow{}
	for _, a := range st.Applications {
		row := rows[a.Item]
		if row == nil {
			row = &appRow{Item: a.Item, Counts: make([]int64, len(stageOrder))}
			rows[a.Item] = row
		}
		for i, sname := range stageOrder {
			if a.Stage == sname {
				row.Counts[i] += a.Count
			}
		}
		if a.Channel == joblib.ChannelTerminal {
			row.Terminal += a.Count
		}
		row.Total += a.Count
	}
	var appRows []appRow
	for _, code := range sortedKeys(rows) {
		appRows = append(appRows, *rows[code])
	}
	sum := func(key func(MianshenCount) string) []MianshenCount {
		m := map[string]*MianshenCount{}
		for _, x := range st.Mianshen {
			k := key(x)
			t := m[k]
			if t == nil {
				t = &MianshenCount{Item: x.Item, Division: x.Division}
				m[k] = t
			}
			t.Pushed += x.Pushed
			t.Cases += x.Cases
			t.Confirmed += x.Confirmed
			t.Refused += x.Refused
			t.Review += x.Review
			t.Paid += x.Paid
			t.Unpaid += x.Unpaid
			t.PaidFen += x.PaidFen
		}
		var out []MianshenCount
		for _, k := range sortedKeys(m) {
			t := m[k]
			if t.Cases > 0 {
				t.ConfirmationRate = float64(t.Confirmed) / float64(t.Cases)
			}
			if t.Confirmed > 0 {
				t.PayoutRate = float64(t.Paid) / float64(t.Confirmed)
			}
			out = append(out, *t)
		}
		return out
	}
	byItem := sum(func(m MianshenCount) string { return m.Item })
	byDiv := sum(func(m MianshenCount) string { return m.Division })
	var divLabels []string
	var conf, pay []float64
	for _, d := range byDiv {
		divLabels = append(divLabels, Districts[d.Division])
		conf = append(conf, d.ConfirmationRate*100)
		pay = append(pay, d.PayoutRate*100)
	}
	var itemLabels []string
	var pushed, cases, confirmed, paid []float64
	for _, m := range byItem {
		itemLabels = append(itemLabels, m.Item)
		pushed = append(pushed, float64(m.Pushed))
		cases = append(cases, float64(m.Cases))
		confirmed = append(confirmed, float64(m.Confirmed))
		paid = append(paid, float64(m.Paid))
	}
	var stageSeries []series
	colors := []string{"#9e9e9e", "#3e7cb1", "#6a9f3c", "#e07b00", "#2e7d32"}
	for i, sname := range stageOrder {
		v := make([]float64, len(appRows))
		for j, row := range appRows {
			v[j] = float64(row.Counts[i])
		}
		stageSeries = append(stageSeries, series{stageNames[sname], colors[i], v})
	}
	var appLabels []string
	for _, row := range appRows {
		appLabels = append(appLabels, row.Item)
	}
	var divs []string
	for c := range Districts {
		divs = append(divs, c)
	}
	sort.Strings(divs)
	var stages []string
	for _, sname := range stageOrder {
		stages = append(stages, stageNames[sname])
	}
	data := map[string]any{
		"F": f, "S": st, "Items": s.cfg.Items, "Divs": divs, "ByItem": byItem, "ByDiv": byDiv, "AppRows": appRows, "Stages": stages,
		"RateChart": template.HTML(groupedBars("确认率与兑付率 (%) per district", divLabels, []series{{"确认率 confirmation", "#3e7cb1", conf}, {"兑付率 payout", "#2e7d32", pay}}, 100)),
		"FlowChart": template.HTML(groupedBars("推送 → 确认 → 兑付 per item", itemLabels, []series{{"推送 pushed", "#9e9e9e", pushed},
			{"确认件 cases", "#3e7cb1", cases}, {"确认 confirmed", "#6a9f3c", confirmed}, {"兑付 paid", "#2e7d32", paid}}, 0)),
		"StageChart": template.HTML(groupedBars("办件 per item and stage", appLabels, stageSeries, 0)),
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTmpl.Execute(w, data); err != nil {
		s.log.Warn("portal: console page", "err", err)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type series struct {
	name, color string
	values      []float64
}

// groupedBars draws one group of bars per label, one bar per series, as
// inline SVG (the console's style: no script, no external asset). top 0
// scales to the largest value.
func groupedBars(title string, labels []string, ss []series, top float64) string {
	const W, H, padL, padB, padT = 720.0, 260.0, 56.0, 44.0, 40.0
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s">`,
		W, H, W, H, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%.0f" y="16" font-size="13" font-weight="bold">%s</text>`, padL, html.EscapeString(title))
	if top == 0 {
		for _, s := range ss {
			for _, v := range s.values {
				top = max(top, v)
			}
		}
	}
	if top == 0 {
		top = 1
	}
	plotH := H - padB - padT
	for i := 0; i <= 4; i++ {
		y := padT + plotH*float64(i)/4
		fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#e4ecf4"/>`, padL, W-8, y, y)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" font-size="10" text-anchor="end">%s</text>`, padL-4, y+3, strconv.FormatFloat(top*float64(4-i)/4, 'f', 0, 64))
	}
	x := padL + 4
	for i, s := range ss {
		fmt.Fprintf(&b, `<rect x="%.0f" y="24" width="10" height="10" fill="%s"/><text x="%.0f" y="33" font-size="10">%s</text>`,
			x, s.color, x+13, html.EscapeString(s.name))
		x += 13 + float64(len([]rune(s.name)))*7 + 16
		_ = i
	}
	n := max(len(labels), 1)
	gw := (W - padL - 8) / float64(n)
	bw := max((gw-6)/float64(max(len(ss), 1)), 1)
	for i, l := range labels {
		gx := padL + gw*float64(i) + 3
		for j, s := range ss {
			if i >= len(s.values) {
				continue
			}
			h := plotH * min(s.values[i], top) / top
			fmt.Fprintf(&b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %s</title></rect>`,
				gx+bw*float64(j), padT+plotH-h, max(bw-1, 1), h, s.color, html.EscapeString(l), html.EscapeString(s.name),
				strconv.FormatFloat(s.values[i], 'f', -1, 64))
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" font-size="10" text-anchor="middle">%s</text>`, gx+gw/2-3, H-padB+14, html.EscapeString(l))
	}
	b.WriteString(`</svg>`)
	return b.String()
}
