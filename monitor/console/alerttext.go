package console

import (
	"html/template"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor"
)

// alertMessageNames say what an alert says (monitor.AlertMessages): one
// entry per message key, in zh-CN and English, with the key's parameters
// in braces. A test checks that every key is here with exactly its
// parameters in both languages.
var alertMessageNames = map[string][2]string{
	monitor.MsgErrorRate:        {"近一小时错误率 {rate}%({events} 条事件中 {errors} 条出错)", "error rate {rate}% over the last hour ({errors} of {events} events)"},
	monitor.MsgBacklog:          {"{count} 条死信待处理", "{count} dead letters waiting"},
	monitor.MsgStaleness:        {"{every}内没有成功的交换(上次成功:{since})", "no success within {every} (last success: {since})"},
	monitor.MsgStalenessNever:   {"{every}内没有成功的交换(从未成功)", "no success within {every} (never succeeded)"},
	monitor.MsgReconciliation:   {"批次 {batch} 对账不符:{code} {detail}", "reconciliation mismatch in batch {batch}: {code} {detail}"},
	monitor.MsgFailedPayments:   {"批次 {batch}:{records} 条记录中 {failed} 条在对方处失败({rate}%)", "batch {batch}: {rate}% of the records failed at the partner ({failed} of {records})"},
	monitor.MsgTrailer:          {"文件 {file} 的汇总行与明细不符 {detail}", "file {file}: the trailer does not match its details {detail}"},
	monitor.MsgPartnerDown:      {"{code}:对方无应答", "{code}: the partner does not answer"},
	monitor.MsgLateReturn:       {"批次 {batch} 的回盘文件 {file} 未在截止时间前到达", "batch {batch}: the return file {file} did not arrive by its deadline"},
	monitor.MsgExpectation:      {"{name} 截至 {due} 未收到", "{name} not received by {due}"},
	monitor.MsgExpectationBatch: {"{name}(批次 {batch})截至 {due} 未收到", "{name} (batch {batch}) not received by {due}"},
	monitor.MsgQuality: {"数据质量分 {score} 低于 {min}(完整性 {completeness}%,格式 {format}%,及时性 {timeliness}%)",
		"data-quality score {score} below {min} (completeness {completeness}%, format {format}%, timeliness {timeliness}%)"},
	monitor.MsgResolvedBreakerClosed: {"{at} 熔断恢复,对方已恢复应答", "the circuit closed at {at}: the partner answers again"},
	monitor.MsgResolvedRecovered:     {"{at} {flow}{type}成功,对方已恢复应答", "{flow} {type} succeeded at {at}: the partner answers again"},
}

var messageParam = regexp.MustCompile(`\{([a-z_]+)\}`)

// AlertText renders what an alert says in the page's language: its message
// key through the dictionary, each parameter named or formatted by its kind
// (code: an error code; flow; type: an event type; every: a duration; at,
// due, since: times; detail: the partner's or engine's own text, masked and
// marked English). An alert stored before message keys existed shows its
// English summary, marked so.
func (p *page) AlertText(a monitor.Alert) template.HTML {
	return p.message(a.Message, a.Args, a.Summary)
}

// AlertResolveText says why the monitor resolved an alert by itself ("" for
// one resolved by a person).
func (p *page) AlertResolveText(a monitor.Alert) template.HTML {
	if a.ResolveMessage == "" {
		return ""
	}
	return p.message(a.ResolveMessage, a.ResolveArgs, a.Note)
}

func (p *page) message(key string, args map[string]string, english string) template.HTML {
	english = mask(english)
	if key == "" {
		return template.HTML(`<span lang="en">` + template.HTMLEscapeString(english) + `</span>`)
	}
	t, ok := alertMessageNames[key]
	if !ok {
		p.miss("alert:" + key)
		return template.HTML(`<span class="untranslated" title="` + template.HTMLEscapeString(key) + `" lang="en">` + template.HTMLEscapeString(english) + `</span>`)
	}
	text := t[p.L]
	var b strings.Builder
	at := 0
	for _, m := range messageParam.FindAllStringSubmatchIndex(text, -1) {
		b.WriteString(template.HTMLEscapeString(text[at:m[0]]))
		name := text[m[2]:m[3]]
		b.WriteString(string(p.param(name, args[name])))
		at = m[1]
	}
	b.WriteString(template.HTMLEscapeString(text[at:]))
	return template.HTML(strings.TrimSpace(b.String()))
}

// param renders one message parameter by its kind.
func (p *page) param(name, v string) template.HTML {
	if v == "" {
		if name == "detail" {
			return ""
		}
		return "—"
	}
	switch name {
	case "code":
		return p.ErrorName(v)
	case "flow":
		return p.Flow(v)
	case "type":
		return template.HTML(template.HTMLEscapeString(p.Step(v)))
	case "detail":
		return template.HTML(`<span class="muted" lang="en">` + template.HTMLEscapeString(mask(v)) + `</span>`)
	case "every":
		if d, err := time.ParseDuration(v); err == nil {
			return template.HTML(template.HTMLEscapeString(spanText(p.L, d)))
		}
	case "at", "due", "since":
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			return template.HTML(t.In(clock.Shanghai).Format("2006-01-02 15:04"))
		}
	}
	return template.HTML(template.HTMLEscapeString(mask(v)))
}

// Span says a duration in the page's language ("5 分钟", "5 min").
func (p *page) Span(d time.Duration) string { return spanText(p.L, d.Round(time.Second)) }

// Ago says how long before the page's time t was, in whole units of the
// largest that fits ("9 小时前", "9 h ago").
func (p *page) Ago(t time.Time) string {
	d := p.Now.Sub(t)
	var unit time.Duration
	switch {
	case d < time.Minute:
		unit = time.Second
	case d < time.Hour:
		unit = time.Minute
	case d < 48*time.Hour:
		unit = time.Hour
	default:
		unit = 24 * time.Hour
	}
	s := spanText(p.L, d.Truncate(unit))
	if p.L == 1 {
		return s + " ago"
	}
	return s + "前"
}

// spanText says a duration in whole days, hours, minutes or seconds.
func spanText(l int, d time.Duration) string {
	units := []struct {
		d      time.Duration
		zh, en string
	}{{24 * time.Hour, " 天", " d"}, {time.Hour, " 小时", " h"}, {time.Minute, " 分钟", " min"}, {time.Second, " 秒", " s"}}
	var parts []string
	for _, u := range units {
		if n := d / u.d; n > 0 {
			name := u.zh
			if l == 1 {
				name = u.en
			}
			parts = append(parts, strconv.FormatInt(int64(n), 10)+name)
			d -= n * u.d
		}
	}
	if len(parts) == 0 {
		if l == 1 {
			return "0 s"
		}
		return "0 秒"
	}
	return strings.Join(parts, " ")
}
