package console_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/alert"
	"github.com/shanghai-mca/mzhub/monitor/console"
)

// TestAlertMessagesAreNamed: every alert message key is in the dictionary,
// in both languages with exactly the key's parameters, and nothing else is.
func TestAlertMessagesAreNamed(t *testing.T) {
	params := regexp.MustCompile(`\{([a-z_]+)\}`)
	names := console.AlertMessageNames()
	keys := monitor.AlertMessages()
	for key, want := range keys {
		n, ok := names[key]
		if !ok {
			t.Errorf("%s: not in the dictionary", key)
			continue
		}
		want = slices.Sorted(slices.Values(want))
		for l, text := range n {
			var got []string
			for _, m := range params.FindAllStringSubmatch(text, -1) {
				got = append(got, m[1])
			}
			sort.Strings(got)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s [%d] %q: parameters %v, want %v", key, l, text, got, want)
			}
		}
	}
	for key := range names {
		if _, ok := keys[key]; !ok {
			t.Errorf("%s: in the dictionary but not a monitor.AlertMessages key", key)
		}
	}
}

// TestAlertSummariesInChinese: the zh-CN alerts page says what each alert
// is in Chinese (one alert of every message, raised with English
// summaries that must not show), an alert stored before keys existed
// shows its summary marked English, and an automatic resolution says why;
// the English page says it in English.
func TestAlertSummariesInChinese(t *testing.T) {
	ctx := context.Background()
	d := full(t, &recorder{})
	inbox := d.Alerts.(*alert.Inbox)
	args := map[string]string{"rate": "22.0", "errors": "22", "events": "100", "count": "3", "every": "24h0m0s",
		"since": "2026-11-26T06:10:00+08:00", "batch": "allowance-2026-11", "code": "missing_records",
		"detail": "letter total 1000.00, system total 999.00", "failed": "110", "records": "500", "file": "CEB_RET_202611.txt",
		"name": "ccb-return", "due": "2026-11-05T18:00:00+08:00", "score": "72.5", "min": "80.0", "completeness": "78.0",
		"format": "100.0", "timeliness": "90.0"}
	var ids []int64
	for key, ps := range monitor.AlertMessages() {
		if strings.HasPrefix(key, "alert_resolved_") {
			continue
		}
		a := monitor.Alert{Rule: "backlog", Severity: monitor.SevWarning, Partner: "bank.ceb", Flow: "allowance",
			Fingerprint: "test/" + key, Summary: "ENGLISH SUMMARY " + key, Message: key, Args: map[string]string{}}
		for _, p := range ps {
			a.Args[p] = args[p]
		}
		if key == monitor.MsgPartnerDown {
			a.Args["code"] = "breaker_open"
		}
		if _, err := inbox.Raise(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := inbox.Raise(ctx, monitor.Alert{Rule: "backlog", Severity: monitor.SevWarning, Partner: "joblib", Flow: "status-push",
		Fingerprint: "test/legacy", Summary: "legacy summary text"}); err != nil {
		t.Fatal(err)
	}
	if _, err := inbox.Raise(ctx, monitor.Alert{Rule: "partner_down", Severity: monitor.SevCritical, Partner: "bank.cmb", Flow: "allowance",
		Fingerprint: "test/down", Summary: "ENGLISH SUMMARY down", Message: monitor.MsgPartnerDown, Args: map[string]string{"code": "breaker_open"}}); err != nil {
		t.Fatal(err)
	}
	list, err := inbox.List(ctx, monitor.AlertOpen, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range list {
		if a.Fingerprint == "test/down" {
			ids = append(ids, a.ID)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("alerts %+v", list)
	}
	if err := inbox.AutoResolve(ctx, ids[0], monitor.MsgResolvedRecovered,
		map[string]string{"at": "2026-11-27T09:58:00+08:00", "flow": "allowance", "type": "uploaded"}, "auto-resolved: ENGLISH NOTE"); err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, d)
	_, body := get(t, srv, "/console/alerts")
	checkChinese(t, body, console.EnglishNames())
	for _, s := range []string{"ENGLISH SUMMARY", "ENGLISH NOTE"} {
		if i := strings.Index(body, s); i >= 0 {
			t.Errorf("the zh-CN page shows the English summary: %.200s", body[i:])
		}
	}
	for _, want := range []string{
		"近一小时错误率 22.0%(100 条事件中 22 条出错)",
		"3 条死信待处理",
		"1 天内没有成功的交换(上次成功:2026-11-26 06:10)",
		"1 天内没有成功的交换(从未成功)",
		`批次 allowance-2026-11 对账不符:回盘记录缺失`,
		`<span class="muted" lang="en">letter total 1000.00, system total 999.00</span>`,
		"批次 allowance-2026-11:500 条记录中 110 条在对方处失败(22.0%)",
		"文件 CEB_RET_202611.txt 的汇总行与明细不符",
		"熔断开启:对方无应答",
		"批次 allowance-2026-11 的回盘文件 CEB_RET_202611.txt 未在截止时间前到达",
		"ccb-return 截至 2026-11-05 18:00 未收到",
		"ccb-return(批次 allowance-2026-11)截至 2026-11-05 18:00 未收到",
		"数据质量分 72.5 低于 80.0(完整性 78.0%,格式 100.0%,及时性 90.0%)",
		`<span lang="en">legacy summary text</span>`,
		"系统自动解决",
		"2026-11-27 09:58 老年综合津贴上传成功,对方已恢复应答",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("zh-CN alerts page lacks %q", want)
		}
	}
	_, en := get(t, srv, "/console/alerts?lang=en")
	for _, want := range []string{"error rate 22.0% over the last hour (22 of 100 events)", "no success within 1 d (never succeeded)",
		"circuit opened: the partner does not answer", "Resolved by the monitor", "the partner answers again", "legacy summary text"} {
		if !strings.Contains(en, want) {
			t.Errorf("English alerts page lacks %q", want)
		}
	}
}
