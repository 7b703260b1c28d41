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
	"github.com/shanghai-mca/mzhub/monitor/console"
	"github.com/shanghai-mca/mzhub/problem"
)

// Handler serves the portal's console page (GET /: inside the console's
// layout and language when the console frames it, console.Mount), its
// statistics as JSON (GET /stats.json, filtered by ?item=&month=&division=),
// the refused records (GET /refused.json), an operator's decision on a case
// waiting for review (POST /cases/{id}/decision) and an operator's retry or
// skip of a send the portal refused (POST /outbox/{id}/retry|skip, audited).
// The hub mounts it at /console/portal/ behind the console's account guard
// (which checks the CSRF token of a POST); canAct says whether the user may
// act (operators; auditors only read).
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
	mux.HandleFunc("POST /outbox/{id}/{action}", func(w http.ResponseWriter, r *http.Request) {
		if canAct != nil && !canAct(r) {
			problem.Write(w, r, problem.Forbidden("only operators retry or skip refused sends"))
			return
		}
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil {
			problem.Write(w, r, problem.ValidationFailed(problem.FieldError{Field: "id", Reason: "not a row id"}))
			return
		}
		u := ""
		if user != nil {
			u = user(r)
		}
		err = s.ResolveRefused(r.Context(), id, r.PathValue("action"), u)
		switch {
		case errors.Is(err, ErrNoRow):
			problem.Write(w, r, problem.Conflict(err.Error()))
		case errors.Is(err, ErrBadRecord):
			problem.Write(w, r, problem.ValidationFailed(problem.FieldError{Field: "action", Reason: err.Error()}))
		case err != nil:
			problem.Write(w, r, problem.Internal(err))
		case strings.HasPrefix(r.Header.Get("Accept"), "application/json"):
			s.Kick()
			writeJSON(w, map[string]any{"id": id, "action": r.PathValue("action")})
		default:
			s.Kick()
			http.Redirect(w, r, "../../", http.StatusSeeOther) // back to the page
		}
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { s.page(w, r, csrf, canAct) })
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

// labels are the page's words, zh-CN first, then English (the console's
// language switch picks one).
var labels = map[string][2]string{
	"title":        {"一网通办：办件库与免申即享", "One-stop portal: job library and no-application benefits"},
	"item":         {"事项", "Item"},
	"all":          {"全部", "All"},
	"month":        {"月份", "Month"},
	"district":     {"区", "District"},
	"filter":       {"查询", "Filter"},
	"per_item":     {"免申即享（按事项）", "No-application benefits per item"},
	"pushed":       {"推送", "Pushed"},
	"cases":        {"确认件", "Cases"},
	"confirmed":    {"确认", "Confirmed"},
	"refused":      {"不予确认", "Refused"},
	"review":       {"待审核", "Waiting for review"},
	"paid":         {"兑付", "Paid"},
	"unpaid":       {"未兑付", "Not paid"},
	"amount":       {"兑付金额（元）", "Amount paid (yuan)"},
	"conf_rate":    {"确认率", "Confirmation rate"},
	"pay_rate":     {"兑付率", "Payout rate"},
	"none":         {"暂无", "None yet"},
	"per_district": {"按区", "Per district"},
	"apps":         {"办件（按事项与环节）", "Applications per item and stage"},
	"terminal":     {"自助终端机", "Self-service terminal"},
	"total":        {"合计", "Total"},
	"outbox":       {"发送队列", "Outbox"},
	"kind":         {"类型", "Kind"},
	"state":        {"状态", "State"},
	"count":        {"数量", "Count"},
	"refused_recs": {"拒收记录", "Refused records"},
	"held":         {"被拒发送（待处理）", "Sends refused by the portal (need action)"},
	"held_note": {"被拒的环节会挡住同一办件后续的环节：核实后重发，或跳过让后续环节发送。",
		"A refused node holds back the later nodes of its application: retry it once the cause is fixed, or skip it so that the later ones go."},
	"key":             {"办件/确认件", "Application / case"},
	"ref":             {"编号", "Reference"},
	"reason":          {"原因", "Reason"},
	"blocked":         {"被挡住的后续", "Later rows held back"},
	"action":          {"操作", "Action"},
	"retry":           {"重发", "Retry"},
	"skip":            {"跳过", "Skip"},
	"rate_chart":      {"确认率与兑付率（%，按区）", "Confirmation and payout rates (%, per district)"},
	"flow_chart":      {"推送 → 确认 → 兑付（按事项）", "Pushed → confirmed → paid (per item)"},
	"app_chart":       {"办件（按事项与环节）", "Applications per item and stage"},
	"st_":             {"待预审", "Received"},
	"st_prereview":    {"预审", "Pre-review"},
	"st_accepted":     {"受理", "Accepted"},
	"st_processing":   {"办理", "In process"},
	"st_done":         {"办结", "Done"},
	"state_pending":   {"待发送", "Pending"},
	"state_sending":   {"发送中", "Sending"},
	"state_delivered": {"已送达", "Delivered"},
	"state_failed":    {"被拒", "Refused"},
	"state_skipped":   {"已跳过", "Skipped"},
	"kind_node":       {"办件环节", "Status node"},
	"kind_push":       {"免申即享推送", "Push"},
	"kind_confirm":    {"部门确认", "Confirmation"},
	"kind_payout":     {"兑付", "Payout"},
}

// words returns the page's words in language l (0 zh-CN, 1 English).
func words(l int) map[string]string {
	out := make(map[string]string, len(labels))
	for k, v := range labels {
		out[k] = v[l]
	}
	return out
}

var pageFuncs = template.FuncMap{
	"pct":      func(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" },
	"yuan":     func(fen int64) string { return fmt.Sprintf("%d.%02d", fen/100, fen%100) },
	"district": func(c string) string { return Districts[c] + " " + c },
	"word":     func(w map[string]string, prefix, k string) string { return w[prefix+k] },
}

// pageTmpl is the page: "content" is what the console frames (Mount);
// the whole page is for the handler served on its own.
var pageTmpl = template.Must(template.New("portal").Funcs(pageFuncs).Parse(`{{define "content"}}{{$w := .W}}<div id="portal"><h1>{{$w.title}}</h1>
<form method="get" class="filters">
<label>{{$w.item}} <select name="item"><option value="">{{$w.all}}</option>{{range .Items}}<option value="{{.Code}}"{{if eq .Code $.F.Item}} selected{{end}}>{{.Name}} {{.Code}}</option>{{end}}</select></label>
<label>{{$w.month}} <input name="month" value="{{.F.Month}}" placeholder="YYYY-MM" size="8"></label>
<label>{{$w.district}} <select name="division"><option value="">{{$w.all}}</option>{{range .Divs}}<option value="{{.}}"{{if eq . $.F.Division}} selected{{end}}>{{district .}}</option>{{end}}</select></label>
<button>{{$w.filter}}</button> <a href="stats.json?item={{.F.Item}}&amp;month={{.F.Month}}&amp;division={{.F.Division}}">JSON</a></form>
{{if .Held}}<section class="needs-action"><h2>{{$w.held}}</h2><p>{{$w.held_note}}</p>
<table><thead><tr><th>{{$w.kind}}</th><th>{{$w.key}}</th><th>{{$w.ref}}</th><th>{{$w.reason}}</th><th>{{$w.blocked}}</th>{{if .CanAct}}<th>{{$w.action}}</th>{{end}}</tr></thead>
<tbody>{{range .Held}}<tr class="red"><td>{{word $w "kind_" .Kind}}</td><td>{{.Key}}</td><td>{{.Ref}}</td><td>{{.Error}}</td><td>{{.Blocked}}</td>{{if $.CanAct}}<td>
<form method="post" action="outbox/{{.ID}}/retry" style="display:inline"><input type="hidden" name="csrf_token" value="{{$.CSRF}}"><button>{{$w.retry}}</button></form>
<form method="post" action="outbox/{{.ID}}/skip" style="display:inline"><input type="hidden" name="csrf_token" value="{{$.CSRF}}"><button>{{$w.skip}}</button></form></td>{{end}}</tr>{{end}}</tbody></table></section>{{end}}
<section><h2>{{$w.per_item}}</h2>
<table><thead><tr><th>{{$w.item}}</th><th>{{$w.pushed}}</th><th>{{$w.cases}}</th><th>{{$w.confirmed}}</th><th>{{$w.refused}}</th><th>{{$w.review}}</th><th>{{$w.paid}}</th><th>{{$w.unpaid}}</th><th>{{$w.amount}}</th><th>{{$w.conf_rate}}</th><th>{{$w.pay_rate}}</th></tr></thead>
<tbody>{{range .ByItem}}<tr><td>{{.Item}}</td><td>{{.Pushed}}</td><td>{{.Cases}}</td><td>{{.Confirmed}}</td><td>{{.Refused}}</td><td>{{.Review}}</td><td>{{.Paid}}</td><td>{{.Unpaid}}</td><td>{{yuan .PaidFen}}</td><td>{{pct .ConfirmationRate}}</td><td>{{pct .PayoutRate}}</td></tr>{{else}}<tr><td colspan="11">{{$w.none}}</td></tr>{{end}}</tbody></table>
{{.RateChart}}
{{.FlowChart}}</section>
<section><h2>{{$w.per_district}}</h2>
<table><thead><tr><th>{{$w.district}}</th><th>{{$w.pushed}}</th><th>{{$w.cases}}</th><th>{{$w.confirmed}}</th><th>{{$w.paid}}</th><th>{{$w.conf_rate}}</th><th>{{$w.pay_rate}}</th></tr></thead>
<tbody>{{range .ByDiv}}<tr><td>{{district .Division}}</td><td>{{.Pushed}}</td><td>{{.Cases}}</td><td>{{.Confirmed}}</td><td>{{.Paid}}</td><td>{{pct .ConfirmationRate}}</td><td>{{pct .PayoutRate}}</td></tr>{{end}}</tbody></table></section>
<section><h2>{{$w.apps}}</h2>
<table><thead><tr><th>{{$w.item}}</th>{{range .Stages}}<th>{{.}}</th>{{end}}<th>{{$w.terminal}}</th><th>{{$w.total}}</th></tr></thead>
<tbody>{{range .AppRows}}<tr><td>{{.Item}}</td>{{range .Counts}}<td>{{.}}</td>{{end}}<td>{{.Terminal}}</td><td>{{.Total}}</td></tr>{{else}}<tr><td colspan="8">{{$w.none}}</td></tr>{{end}}</tbody></table>
{{.StageChart}}</section>
<section><h2>{{$w.outbox}}</h2><table><thead><tr><th>{{$w.kind}}</th><th>{{$w.state}}</th><th>{{$w.count}}</th></tr></thead>
<tbody>{{range .S.Outbox}}<tr class="{{.State}}"><td>{{word $w "kind_" .Kind}}</td><td>{{word $w "state_" .State}}</td><td>{{.Count}}</td></tr>{{end}}</tbody></table>
<p>{{$w.refused_recs}}: {{.S.Refused}} · <a href="refused.json">refused.json</a></p></section></div>{{end}}<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.W.title}} · mzhub</title>
<link rel="stylesheet" href="/console/static/console.css"></head>
<body><main>{{template "content" .}}</main></body></html>`))

type appRow struct {
	Item     string
	Counts   []int64
	Terminal int64
	Total    int64
}

func (s *Service) page(w http.ResponseWriter, r *http.Request, csrf func(*http.Request) string, canAct func(*http.Request) bool) {
	frame, framed := console.FrameFrom(r.Context())
	l := 0
	if framed && frame.Lang() == "en" {
		l = 1
	}
	wd := words(l)
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
		stageSeries = append(stageSeries, series{wd["st_"+sname], colors[i], v})
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
		stages = append(stages, wd["st_"+sname])
	}
	held, err := s.RefusedRows(r.Context(), 100)
	if err != nil {
		problem.Write(w, r, problem.Internal(err))
		return
	}
	data := map[string]any{
		"W": wd, "F": f, "S": st, "Items": s.cfg.Items, "Divs": divs, "ByItem": byItem, "ByDiv": byDiv, "AppRows": appRows, "Stages": stages,
		"Held": held, "CanAct": canAct == nil || canAct(r), "CSRF": "",
		"RateChart": template.HTML(groupedBars(wd["rate_chart"], divLabels, []series{{wd["conf_rate"], "#3e7cb1", conf}, {wd["pay_rate"], "#2e7d32", pay}}, 100)),
		"FlowChart": template.HTML(groupedBars(wd["flow_chart"], itemLabels, []series{{wd["pushed"], "#9e9e9e", pushed},
			{wd["cases"], "#3e7cb1", cases}, {wd["confirmed"], "#6a9f3c", confirmed}, {wd["paid"], "#2e7d32", paid}}, 0)),
		"StageChart": template.HTML(groupedBars(wd["app_chart"], appLabels, stageSeries, 0)),
	}
	if csrf != nil {
		data["CSRF"] = csrf(r)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if framed {
		frame.SetTitle("nav_portal")
		err = pageTmpl.ExecuteTemplate(w, "content", data)
	} else {
		err = pageTmpl.Execute(w, data)
	}
	if err != nil {
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

// OffHandler is the console page while the portal section is off: it says
// so, and lists the portal routes the route engine did not start (by id,
// with the reason; routes gives them). Its JSON answers are 503
// problem+json with the same words.
func OffHandler(routes func() map[string]string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		skipped := routes()
		ids := sortedKeys(skipped)
		if strings.HasSuffix(r.URL.Path, ".json") {
			problem.Write(w, r, problem.Problem{Status: http.StatusServiceUnavailable, Code: "portal_disabled", Title: "The one-stop portal is not enabled",
				Detail: fmt.Sprintf("portal.enabled is false; %d portal routes not started: %s", len(ids), strings.Join(ids, ", "))})
			return
		}
		frame, framed := console.FrameFrom(r.Context())
		en := framed && frame.Lang() == "en"
		if framed {
			frame.SetTitle("nav_portal")
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		data := map[string]any{"EN": en, "IDs": ids, "Why": skipped}
		if err := offTmpl.Execute(w, data); err != nil {
			return
		}
	})
}

var offTmpl = template.Must(template.New("off").Parse(`<section class="portal-off">
{{if .EN}}<h2>One-stop portal: not enabled</h2>
<p>The portal section is off (<code>portal.enabled: false</code>): nothing is fetched from or sent to the portal. The portal routes are loaded but not started, so they do not retry against nothing:</p>
{{else}}<h2>一网通办：未启用</h2>
<p>配置中一网通办未启用（<code>portal.enabled: false</code>）：不从一网通办获取、也不向其发送。一网通办路由已加载但未启动，不会对空地址反复重试：</p>
{{end}}<ul>{{range .IDs}}<li><code>{{.}}</code></li>{{else}}<li>—</li>{{end}}</ul>
</section>`))
