package allowance

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"strings"

	"github.com/shanghai-mca/mzhub/problem"
	"github.com/shanghai-mca/mzhub/security/mask"
)

// Push is one 入海 push shown on the console.
type Push struct {
	// Period, State, Records, TotalFen and Receipt of the push.
	Period, State, Receipt, Detail string
	Records, TotalFen              int64
}

// OpsOptions wire the console page into the hub's accounts.
type OpsOptions struct {
	// User names the logged-in user of a request.
	User func(*http.Request) string
	// CanAct tells whether the user may act (operators; auditors only read).
	CanAct func(*http.Request) bool
	// CSRF returns the session's CSRF token for the page's forms.
	CSRF func(*http.Request) string
	// Pushes lists the recent 入海 pushes (nil: none shown).
	Pushes func(ctx context.Context) ([]Push, error)
	// Framed tells whether the console frames the answer (its layout around
	// an HTML fragment: monitor/console's Mount); otherwise a whole page is served.
	Framed func(*http.Request) bool
}

// OpsHandler serves the console's data sea page (mounted under
// /console/datasea behind the console's account guard): GET / shows the
// overview, the warnings, claw-backs, back-payments, stopped persons,
// pending 迁入 reviews, quarantined records and pushes; GET /report.csv
// is the screening report; operators POST /confirm-alive (id_number, note),
// /reviews/{record}/{approve|reject} and /card-status (id_number: the card
// center's answer for one person, shown on the page and audited).
func (s *Service) OpsHandler(o OpsOptions) http.Handler {
	mux := http.NewServeMux()
	// render shows the page with d's flash and card answer.
	render := func(w http.ResponseWriter, r *http.Request, d pageData) {
		var err error
		if d.Overview, err = s.Overview(r.Context()); err != nil {
			problem.Write(w, r, problem.Internal(err))
			return
		}
		d.Lists = map[string][]Item{}
		for _, k := range []string{"warning", "clawback", "backpay", "stopped", "quarantined"} {
			if d.Lists[k], err = s.Items(r.Context(), k, 50); err != nil {
				problem.Write(w, r, problem.Internal(err))
				return
			}
		}
		if d.Apps, err = s.Applications(r.Context(), 50); err != nil {
			problem.Write(w, r, problem.Internal(err))
			return
		}
		if d.Reviews, err = s.Reviews(r.Context(), "pending", 50); err != nil {
			problem.Write(w, r, problem.Internal(err))
			return
		}
		if o.Pushes != nil {
			if d.Pushes, err = o.Pushes(r.Context()); err != nil {
				problem.Write(w, r, problem.Internal(err))
				return
			}
		}
		d.CanAct = o.CanAct == nil || o.CanAct(r)
		if o.CSRF != nil {
			d.CSRF = o.CSRF(r)
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if o.Framed != nil && o.Framed(r) {
			_ = page.ExecuteTemplate(w, "content", d)
			return
		}
		_ = page.Execute(w, d)
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		render(w, r, pageData{Flash: r.URL.Query().Get("done")})
	})
	mux.HandleFunc("GET /report.csv", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="datasea-screening.csv"`)
		if err := s.WriteReport(r.Context(), w); err != nil {
			s.log.Error("allowance: report", "err", err)
		}
	})
	act := func(f func(w http.ResponseWriter, r *http.Request, user string)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if o.CanAct != nil && !o.CanAct(r) {
				problem.Write(w, r, problem.Forbidden("only operators confirm persons and decide reviews"))
				return
			}
			user := ""
			if o.User != nil {
				user = o.User(r)
			}
			if user == "" {
				problem.Write(w, r, problem.Unauthenticated("a logged-in console user is required"))
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
			if err := r.ParseForm(); err != nil {
				problem.Write(w, r, problem.ValidationFailed(problem.FieldError{Field: "form", Reason: "not a form"}))
				return
			}
			f(w, r, user)
		}
	}
	mux.HandleFunc("POST /confirm-alive", act(func(w http.ResponseWriter, r *http.Request, user string) {
		id := strings.ToUpper(strings.TrimSpace(r.PostFormValue("id_number")))
		_, err := s.ConfirmAlive(r.Context(), id, user, r.PostFormValue("note"))
		switch {
		case errors.Is(err, ErrBadID):
			problem.Write(w, r, problem.ValidationFailed(problem.FieldError{Field: "id_number", Reason: "not a valid resident ID number"}))
		case errors.Is(err, ErrNoDeath):
			problem.Write(w, r, problem.NotFound("no applied death record for this person"))
		case err != nil:
			problem.Write(w, r, problem.Internal(err))
		default:
			http.Redirect(w, r, "./?done=confirmed", http.StatusSeeOther)
		}
	}))
	mux.HandleFunc("POST /card-status", act(func(w http.ResponseWriter, r *http.Request, user string) {
		ans, err := s.QueryCardStatus(r.Context(), r.PostFormValue("id_number"), user)
		switch {
		case errors.Is(err, ErrBadID):
			problem.Write(w, r, problem.ValidationFailed(problem.FieldError{Field: "id_number", Reason: "not a valid resident ID number"}))
		case errors.Is(err, ErrNoCardCenter):
			p := problem.Unavailable(0)
			p.Detail = "no card center is configured (cardcenter.url)"
			problem.Write(w, r, p)
		case errors.Is(err, ErrCardCenter):
			p := problem.Unavailable(60)
			p.Detail = "the card center did not answer: " + mask.Text(err.Error())
			problem.Write(w, r, p)
		case err != nil:
			problem.Write(w, r, problem.Internal(err))
		default:
			render(w, r, pageData{Card: &ans})
		}
	}))
	mux.HandleFunc("POST /reviews/{record}/{decision}", act(func(w http.ResponseWriter, r *http.Request, user string) {
		dec := r.PathValue("decision")
		if dec != "approve" && dec != "reject" {
			problem.Write(w, r, problem.ValidationFailed(problem.FieldError{Field: "decision", Reason: "approve or reject"}))
			return
		}
		err := s.Decide(r.Context(), r.PathValue("record"), dec == "approve", user)
		switch {
		case errors.Is(err, ErrNoReview):
			problem.Write(w, r, problem.NotFound("no pending review of this record"))
		case err != nil:
			problem.Write(w, r, problem.Internal(err))
		default:
			http.Redirect(w, r, "../../?done=reviewed", http.StatusSeeOther)
		}
	}))
	return mux
}

type pageData struct {
	Overview Overview
	Lists    map[string][]Item
	Reviews  []Review
	Apps     []Application
	Pushes   []Push
	CanAct   bool
	CSRF     string
	Flash    string
	// Card is the answer of an on-demand card-status query, shown on top.
	Card *CardAnswer
}

// cardStatusText is a card status in Chinese and English.
func cardStatusText(st string) string {
	switch st {
	case "normal":
		return "正常 · normal"
	case "lost":
		return "挂失 · lost"
	case "frozen":
		return "冻结 · frozen"
	case "cancelled":
		return "注销 · cancelled"
	case "none":
		return "无卡 · no card"
	}
	return st
}

func yuan(fen int64) string {
	neg := fen < 0
	if neg {
		fen = -fen
	}
	s := template.HTMLEscapeString(itoa(fen/100)) + "." + string(rune('0'+fen%100/10)) + string(rune('0'+fen%10))
	if neg {
		s = "-" + s
	}
	return s
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

var page = template.Must(template.New("datasea").Funcs(template.FuncMap{"yuan": yuan, "cardStatus": cardStatusText}).Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>数据海 · Data sea</title>
<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:.25em .5em;font-size:90%}
.warn{color:#a60}.err{color:#b00}.ok{color:#070}</style></head><body>
{{template "content" .}}
</body></html>
{{define "content"}}<h1>数据海 · Data sea</h1>
{{if .Flash}}<p class="ok">{{.Flash}}</p>{{end}}
{{with .Card}}<h2>卡状态查询结果 · Card status answer</h2>
<table><tr><th>身份证 · person</th><th>卡状态 · card status</th><th>津贴状态 · allowance status</th><th>一卡通发放卡 · 一卡通 card paid to</th></tr>
<tr><td>{{.IDMasked}}</td><td class="{{if eq .Status "normal"}}ok{{else}}err{{end}}">{{cardStatus .Status}}</td><td>{{.Person.Status}}{{if .Person.StopMonth}} ({{.Person.StopMonth}}){{end}}</td><td>{{if .Bank}}{{.Bank}} {{.AccountMasked}}{{else}}—{{end}}</td></tr></table>{{end}}
<h2>概况 · Overview</h2>
<table><tr><th>死亡记录 · deaths</th><th>迁出 · moves out</th><th>迁入 · moves in</th><th>作废 · invalidated</th><th>停发(死亡) · stopped (deceased)</th><th>停发(迁出) · stopped (moved out)</th><th>待审核迁入 · pending reviews</th><th>追回 · claw-backs</th><th>补发 · back-payments</th><th>隔离 · quarantined</th></tr>
<tr><td>{{index .Overview.Records "death"}}</td><td>{{index .Overview.Records "move_out"}}</td><td>{{index .Overview.Records "move_in"}}</td><td>{{.Overview.Invalidated}}</td>
<td>{{.Overview.Deceased}}</td><td>{{.Overview.MovedOut}}</td><td>{{.Overview.PendingReviews}}</td>
<td class="warn">{{.Overview.Clawbacks}} ({{yuan .Overview.ClawbackFen}} 元)</td><td>{{.Overview.Backpays}} ({{yuan .Overview.BackpayFen}} 元)</td><td class="err">{{.Overview.Quarantined}}</td></tr></table>
<p><a href="report.csv">筛查报告 · screening report (CSV)</a></p>
<h2>筛查预警 · Screening warnings</h2>
<table><tr><th>身份证 · person</th><th>规则 · rule</th><th>说明 · detail</th><th>发现于 · found in</th></tr>
{{range index .Lists "warning"}}<tr><td>{{.Person}}</td><td class="warn">{{.Code}}</td><td>{{.Detail}}</td><td>{{.Month}}</td></tr>{{else}}<tr><td colspan="4">无 · none</td></tr>{{end}}</table>
<h2>待审核迁入 · 迁入 awaiting district review</h2>
<table><tr><th>记录 · record</th><th>身份证 · person</th><th>区 · district</th><th>迁出地 · from</th><th>日期 · date</th><th></th></tr>
{{range .Reviews}}<tr><td>{{.RecordID}}</td><td>{{.IDMasked}}</td><td>{{.District}}</td><td>{{.Region}}</td><td>{{.Date}}</td><td>{{if $.CanAct}}
<form method="post" action="reviews/{{.RecordID}}/approve" style="display:inline"><input type="hidden" name="csrf_token" value="{{$.CSRF}}"><button>通过 · approve</button></form>
<form method="post" action="reviews/{{.RecordID}}/reject" style="display:inline"><input type="hidden" name="csrf_token" value="{{$.CSRF}}"><button>驳回 · reject</button></form>{{end}}</td></tr>
{{else}}<tr><td colspan="6">无 · none</td></tr>{{end}}</table>
<h2>停发 · Stopped</h2>
<table><tr><th>身份证 · person</th><th>状态 · status</th><th>停发起始月 · from month</th><th>记录 · record</th></tr>
{{range index .Lists "stopped"}}<tr><td>{{.Person}}</td><td>{{.State}}</td><td>{{.Month}}</td><td>{{.Code}}</td></tr>{{else}}<tr><td colspan="4">无 · none</td></tr>{{end}}</table>
{{if .CanAct}}<h3>确认在世 · Confirm a person alive</h3>
<form method="post" action="confirm-alive"><input type="hidden" name="csrf_token" value="{{.CSRF}}">
<label>身份证号 · ID number <input name="id_number" autocomplete="off" size="20"></label>
<label>说明 · note <input name="note" size="40"></label><button>确认在世 · confirm alive</button></form>{{end}}
<h2>追回 · Claw-backs (paid after death)</h2>
<table><tr><th>身份证 · person</th><th>月份 · month</th><th>金额 · amount</th><th>状态 · state</th><th>说明 · detail</th></tr>
{{range index .Lists "clawback"}}<tr><td>{{.Person}}</td><td>{{.Month}}</td><td>{{yuan .AmountFen}}</td><td>{{.State}}</td><td>{{.Detail}}</td></tr>{{else}}<tr><td colspan="5">无 · none</td></tr>{{end}}</table>
<h2>补发 · Back-payments</h2>
<table><tr><th>身份证 · person</th><th>月份 · month</th><th>金额 · amount</th><th>状态 · state</th><th>说明 · detail</th></tr>
{{range index .Lists "backpay"}}<tr><td>{{.Person}}</td><td>{{.Month}}</td><td>{{yuan .AmountFen}}</td><td>{{.State}}</td><td>{{.Detail}}</td></tr>{{else}}<tr><td colspan="5">无 · none</td></tr>{{end}}</table>
<h2>隔离记录 · Quarantined records</h2>
<table><tr><th>位置 · where</th><th>记录 · record</th><th>来源 · source</th><th>原因 · reason</th></tr>
{{range index .Lists "quarantined"}}<tr><td>{{.Person}}</td><td>{{.State}}</td><td>{{.Code}}</td><td class="err">{{.Detail}}</td></tr>{{else}}<tr><td colspan="4">无 · none</td></tr>{{end}}</table>
<h2>卡申领与制卡 · Card applications and production</h2>
{{if .CanAct}}<form method="post" action="card-status"><input type="hidden" name="csrf_token" value="{{.CSRF}}">
<label>身份证号 · ID number <input name="id_number" autocomplete="off" size="20"></label><button>查询卡状态 · query card status</button></form>{{end}}
<table><tr><th>申领 · application</th><th>身份证 · person</th><th>卡种 · card</th><th>渠道 · channel</th><th>一卡通</th><th>发放银行卡 · paid to</th><th>日期 · date</th><th>区 · district</th><th>制卡 · stage</th></tr>
{{range .Apps}}<tr><td>{{.AppID}}</td><td>{{.IDMasked}}</td><td>{{if eq .CardType "sscard"}}社保卡 · social-security card{{else}}敬老卡 · senior card{{end}}</td><td>{{.Channel}}</td><td>{{if .Yikatong}}是 · yes{{else}}否 · no{{end}}</td><td>{{if and .Yikatong .Bank}}{{.Bank}} {{.AccountMasked}}{{end}}</td><td>{{.AppliedOn}}</td><td>{{.District}}</td><td>{{.Stage}}</td></tr>{{else}}<tr><td colspan="9">无 · none</td></tr>{{end}}</table>
<h2>入海 · Recipients pushed</h2>
<table><tr><th>月份 · period</th><th>人数 · records</th><th>金额 · total</th><th>状态 · state</th><th>回执 · receipt</th></tr>
{{range .Pushes}}<tr><td>{{.Period}}</td><td>{{.Records}}</td><td>{{yuan .TotalFen}}</td><td>{{.State}}</td><td>{{.Receipt}}{{if .Detail}} <span class="err">{{.Detail}}</span>{{end}}</td></tr>{{else}}<tr><td colspan="5">无 · none</td></tr>{{end}}</table>
{{end}}`))
