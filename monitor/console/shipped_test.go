package console_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/configs"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/alert"
	"github.com/shanghai-mca/mzhub/monitor/console"
	"github.com/shanghai-mca/mzhub/monitor/quality"
	"github.com/shanghai-mca/mzhub/monitor/store/sqlite"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// shippedMonitor decodes the monitor section of a shipped profile onto the
// defaults, strictly, as config.Load does.
func shippedMonitor(t *testing.T, file []byte) monitor.Config {
	t.Helper()
	var doc struct {
		Monitor yaml.Node `yaml:"monitor"`
	}
	if err := yaml.Unmarshal(file, &doc); err != nil {
		t.Fatal(err)
	}
	var raw bytes.Buffer
	enc := yaml.NewEncoder(&raw)
	if err := enc.Encode(&doc.Monitor); err != nil {
		t.Fatal(err)
	}
	cfg := monitor.DefaultConfig()
	dec := yaml.NewDecoder(&raw)
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestShippedQualityRuleRaisesTheStrip: both shipped profiles set a
// data-quality minimum for every partner flow; a flow scoring just below it
// raises a quality alert and the overview's strip shows 数据质量低于阈值, a
// flow just above it does not.
func TestShippedQualityRuleRaisesTheStrip(t *testing.T) {
	for name, file := range map[string][]byte{"mzhub.yaml": configs.Embedded, "cluster.yaml": configs.Cluster} {
		t.Run(name, func(t *testing.T) {
			cfg := shippedMonitor(t, file)
			var min float64
			for _, r := range cfg.Quality.Rules {
				if r.Partner == "" && r.Flow == "" && r.MinScore > 0 {
					min = r.MinScore
				}
			}
			if min <= 60 || min >= 100 {
				t.Fatalf("%s: no quality rule with a min_score for every partner flow (or one this test cannot reach): %+v", name, cfg.Quality.Rules)
			}
			ctx := context.Background()
			st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "monitor.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			// Only completeness falls: score = 60 + 40 * completeness.
			failedFor := func(score float64) int64 { return int64(math.Round(1000 * (1 - (score-60)/40))) }
			var evs []monitor.Event
			for i, f := range []struct {
				partner string
				score   float64
			}{{"hrss", min - 5}, {"hpf", min + 5}} {
				evs = append(evs, monitor.Event{ID: fmt.Sprint("q", i), ExchangeID: fmt.Sprint("q", i), Time: now.Add(-2 * time.Hour),
					Partner: f.partner, Flow: "verification", Direction: monitor.Inbound, Type: monitor.Received, Status: monitor.OK,
					Records: 1000, RecordsFailed: failedFor(f.score)})
			}
			if err := st.Append(ctx, evs); err != nil {
				t.Fatal(err)
			}
			db := storetest.Open(t)
			if err := alert.Migrate(ctx, db); err != nil {
				t.Fatal(err)
			}
			fc := clock.NewFake(now)
			inbox := alert.NewInbox(db, fc, &recorder{}, nil)
			scorer := &quality.Scorer{Store: st, Clock: fc, Config: cfg.Quality, Alerts: inbox}
			if err := scorer.Check(ctx, cfg.Quality.ReportEvery); err != nil {
				t.Fatal(err)
			}
			list, err := inbox.List(ctx, monitor.AlertOpen, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != 1 || list[0].Rule != "quality" || list[0].Partner != "hrss" || list[0].Message != monitor.MsgQuality ||
				list[0].Args["min"] != strconv.FormatFloat(min, 'f', 1, 64) {
				t.Fatalf("quality alerts %+v, want one for hrss (score %.0f < %.0f) and none for hpf (%.0f)", list, min-5, min, min+5)
			}
			srv := newServer(t, console.Deps{Store: st, Clock: fc, Alerts: inbox, Quality: scorer, Thresholds: cfg.Thresholds})
			_, body := get(t, srv, "/console/")
			if !strings.Contains(body, `<li class="amber"><a href="/console/quality">数据质量低于阈值: <b>1</b>`) {
				i := strings.Index(body, "<ul>")
				t.Errorf("the strip has no quality entry: %.800s", body[max(i, 0):])
			}
		})
	}
}
