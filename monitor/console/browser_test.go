package console_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/monitor/console"
)

// TestIntegrationConsoleBrowser opens every console page in headless
// Chromium against a seeded store, checks key content in the rendered DOM
// and saves a screenshot of each page under $MZHUB_ARTIFACTS (or a temp dir).
func TestIntegrationConsoleBrowser(t *testing.T) {
	chromium := os.Getenv("MZHUB_TEST_CHROMIUM")
	if chromium == "" {
		t.Skip("MZHUB_TEST_CHROMIUM not set: skipping the headless-browser test (apt-get install -y chromium; MZHUB_TEST_CHROMIUM=/usr/bin/chromium)")
	}
	artifacts := os.Getenv("MZHUB_ARTIFACTS")
	if artifacts == "" {
		artifacts = t.TempDir()
	}
	artifacts = filepath.Join(artifacts, "console")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	d := full(t, &recorder{})
	d.Cycles = newFakeCycles()
	c, err := console.New(d)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/console/", http.StripPrefix("/console", c))
	srv := httptest.NewServer(mux)
	defer srv.Close()

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
		{"topology-en", "/console/topology?lang=en", []string{"Topology", "Dangling topics", "external system"}},
	}
	for _, p := range pages {
		t.Run(p.name, func(t *testing.T) {
			profile := t.TempDir()
			flags := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
				"--disable-background-networking", "--disable-component-update", "--disable-sync",
				"--user-data-dir=" + profile}
			dom := run(t, chromium, append(flags, "--dump-dom", srv.URL+p.path)...)
			for _, w := range p.want {
				if !strings.Contains(dom, w) {
					t.Errorf("rendered page lacks %q", w)
				}
			}
			if strings.Contains(dom, "render failed") {
				t.Error("page failed to render")
			}
			shot := filepath.Join(artifacts, p.name+".png")
			run(t, chromium, append(flags, "--hide-scrollbars", "--window-size=1440,1100", "--screenshot="+shot, srv.URL+p.path)...)
			if fi, err := os.Stat(shot); err != nil || fi.Size() < 1000 {
				t.Errorf("screenshot %s: %v", shot, err)
			}
		})
	}
	t.Logf("screenshots in %s", artifacts)
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
