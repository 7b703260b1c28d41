package console_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/console"
	"github.com/shanghai-mca/mzhub/monitor/store/sqlite"
)

// TestIntegrationConsoleBrowser opens every console page in headless
// Chromium against a seeded store, checks key content in the rendered DOM
// and saves a screenshot of each page under $MZHUB_ARTIFACTS (or a temp dir).
func TestIntegrationConsoleBrowser(t *testing.T) {
	chromium := os.Getenv("MZHUB_TEST_CHROMIUM")
	if chromium == "" {
		t.Skip("MZHUB_TEST_CHROMIUM not set: skipping the headless-browser test (apt-get install -y chromium; MZHUB_TEST_CHROMIUM=/usr/bin/chromium)")
	}
	artifacts := chromiumArtifacts(t)
	srv := fullServer(t)

	pages := []struct {
		name, path string
		want       []string
	}{
		{"overview", "/console/", []string{"总览", "建设银行", `data-partner="bank.ccb" data-op="return" data-band="red"`, "业务处理进程监管"}},
		{"health", "/console/matrix", []string{"健康矩阵", "建设银行", "数据海", `class="cell red"`}},
		{"health-en", "/console/matrix?lang=en", []string{"Health matrix", "Last success"}},
		{"screen", "/console/screen", []string{"大屏", "今日成功率", "<svg"}},
		{"calendar", "/console/calendar", []string{"预期文件日历", "datasea-death-daily", "ccb-return-allowance-2026-11", "建设银行"}},
		{"batches", "/console/batches", []string{"批次进程", "allowance-2026-11", "停滞", "发放与扣款周期",
			`data-cycle="disbursement-2026-11"`, "待市级确认", "2,639,850.05", "/console/batches/disbursement/2026-11/confirm-city", "市级确认",
			`data-cycle="deduction-2026-10"`, "恢复运行", "list-2026-12.csv"}},
		{"batches-en", "/console/batches?lang=en&batch=deduction-2026-10", []string{"Allowance cycles", "Confirm (city)", "Resume", "Total check", "bad ID number"}},
		{"overview-needs-action", "/console/", []string{"待处理", "低保发放 2026-11: 待市级确认"}},
		{"search", "/console/search?batch=allowance-2026-11", []string{"交换查询", "BOC_DISB_202611.txt"}},
		{"lineage", "/console/exchange/allowance-2026-11%2Fbank.boc%2Fsend", []string{"血缘", "allowance-2026-11/bank.boc/return"}},
		{"failures", "/console/failures", []string{"失败与死信", "格式错误", "joblib/status/dl-1", "310***********1234"}},
		{"alerts", "/console/alerts", []string{"告警", "超时未成功", "预期文件未到"}},
		{"charts", "/console/charts?window=24h", []string{"吞吐与时延", "<svg", "polyline"}},
		{"quality", "/console/quality", []string{"数据质量", "村镇银行 02"}},
		{"topology", "/console/topology", []string{"拓扑", "悬空主题", "district.notices", "殡葬管理平台", `class="node service"`, "120/分"}},
		{"accounts", "/console/accounts", []string{"开户失败", "户名与证件不符", "310***********1234", "更正并重试", "已重试 ZH202612020000000011: 已发送银行"}},
		{"accounts-en", "/console/accounts?lang=en", []string{"Failed openings", "name and ID do not match", "Correct and retry"}},
		{"topology-en", "/console/topology?lang=en", []string{"Topology", "Dangling topics", "external system"}},
	}
	// Every other page: rendered in zh-CN without an untranslated key.
	listed := map[string]bool{}
	for _, p := range pages {
		listed[p.path] = true
	}
	for _, path := range consolePages {
		if !listed[path] {
			name := "zh" + strings.NewReplacer("/", "_", "?", "_", "%", "_", "&", "_", "=", "_").Replace(strings.TrimPrefix(path, "/console"))
			pages = append(pages, struct {
				name, path string
				want       []string
			}{name, path, []string{`lang="zh-CN"`}})
		}
	}
	for _, p := range pages {
		t.Run(p.name, func(t *testing.T) {
			flags := chromiumFlags(t)
			dom := run(t, chromium, append(flags, "--dump-dom", srv.URL+p.path)...)
			if !strings.Contains(p.path, "lang=en") && strings.Contains(dom, "data-untranslated=") {
				i := strings.Index(dom, "data-untranslated=")
				t.Errorf("untranslated keys in the zh-CN page: %.200s", dom[i:])
			}
			for _, w := range p.want {
				if !strings.Contains(dom, w) {
					t.Errorf("rendered page lacks %q", w)
				}
			}
			if strings.Contains(dom, "render failed") {
				t.Error("page failed to render")
			}
			shot := filepath.Join(artifacts, p.name+".png")
			run(t, chromium, append(chromiumFlags(t), "--hide-scrollbars", "--window-size=1440,1100", "--screenshot="+shot, srv.URL+p.path)...)
			if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 {
				t.Errorf("screenshot %s: %v", shot, err)
			}
		})
	}
	t.Logf("screenshots in %s", artifacts)
}

// chromiumFlags are headless Chromium's flags with a fresh profile.
func chromiumFlags(t *testing.T) []string {
	return []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
}

// chromiumArtifacts is where screenshots go: $MZHUB_ARTIFACTS/console, or
// a temporary directory.
func chromiumArtifacts(t *testing.T) string {
	dir := os.Getenv("MZHUB_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	dir = filepath.Join(dir, "console")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestIntegrationOverviewRedThenGreen: in headless Chromium, the overview
// cell of a flow turns red when its partner fails and green again once it
// has recovered (the failures are older than an hour and few against the
// day's traffic); a screenshot of each state is saved.
func TestIntegrationOverviewRedThenGreen(t *testing.T) {
	chromium := os.Getenv("MZHUB_TEST_CHROMIUM")
	if chromium == "" {
		t.Skip("MZHUB_TEST_CHROMIUM not set: skipping the headless-browser test (apt-get install -y chromium; MZHUB_TEST_CHROMIUM=/usr/bin/chromium)")
	}
	artifacts := chromiumArtifacts(t)
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "monitor.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	fc := clock.NewFake(now)
	srv := newServer(t, console.Deps{Store: st, Clock: fc, Thresholds: monitor.DefaultConfig().Thresholds})
	n := 0
	add := func(count int, status monitor.Status, back time.Duration) {
		t.Helper()
		var evs []monitor.Event
		for i := range count {
			n++
			ev := monitor.Event{ID: fmt.Sprint("e", n), ExchangeID: fmt.Sprint("x", n), Time: fc.Now().Add(-back + time.Duration(i)*time.Second),
				Partner: "portal.joblib", Flow: "status-push", Direction: monitor.Outbound, Channel: "http", Type: monitor.Sent, Status: status}
			if status == monitor.Error {
				ev.Type, ev.ErrorClass, ev.ErrorCode = monitor.Failed, "transient", "http_503"
			}
			evs = append(evs, ev)
		}
		if err := st.Append(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	cell := `data-partner="portal.joblib" data-op="status_push" data-band="`
	for _, step := range []struct {
		name  string
		setup func()
		band  string
	}{
		{"healthy", func() { add(40, monitor.OK, 50*time.Minute) }, "green"},
		{"failing", func() { add(20, monitor.Error, 5*time.Minute) }, "red"},
		{"recovered", func() { fc.Advance(2 * time.Hour); add(600, monitor.OK, 55*time.Minute) }, "green"},
	} {
		step.setup()
		dom := run(t, chromium, append(chromiumFlags(t), "--dump-dom", srv.URL+"/console/")...)
		if !strings.Contains(dom, cell+step.band+`"`) {
			i := strings.Index(dom, cell)
			t.Errorf("%s: the cell is not %s: %.200s", step.name, step.band, dom[max(i, 0):])
		}
		shot := filepath.Join(artifacts, "overview-"+step.name+".png")
		run(t, chromium, append(chromiumFlags(t), "--hide-scrollbars", "--window-size=1440,1000", "--screenshot="+shot, srv.URL+"/console/")...)
		if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 {
			t.Errorf("screenshot %s: %v", shot, err)
		}
	}
}

func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = t.TempDir()
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s", bin, args, err, errb.String())
	}
	return out.String()
}
