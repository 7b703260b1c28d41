package quality

import (
	"context"
	"encoding/csv"
	"fmt"
	"hash/fnv"
	"html/template"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/alert"
)

// DefaultAnswerWithin is the timeliness limit of flows without a rule.
const DefaultAnswerWithin = 30 * time.Second

// Raiser raises alerts (alert.Inbox).
type Raiser interface {
	Raise(ctx context.Context, a monitor.Alert) (bool, error)
}

// Scorer computes quality scores from the event store.
type Scorer struct {
	Store  monitor.Store
	Config monitor.QualityConfig
	Clock  clock.Clock
	Alerts Raiser
	Logger *slog.Logger
}

// rule returns the most specific rule for a partner flow.
func (s *Scorer) rule(partner, flow string) monitor.QualityRule {
	best, bestScore := monitor.QualityRule{AnswerWithin: DefaultAnswerWithin}, -1
	for _, r := range s.Config.Rules {
		if (r.Partner != "" && r.Partner != partner) || (r.Flow != "" && r.Flow != flow) {
			continue
		}
		sc := 0
		if r.Partner != "" {
			sc += 2
		}
		if r.Flow != "" {
			sc++
		}
		if sc > bestScore {
			best, bestScore = r, sc
			if best.AnswerWithin <= 0 {
				best.AnswerWithin = DefaultAnswerWithin
			}
		}
	}
	return best
}

// Scores scores each partner flow with events in [from, to).
func (s *Scorer) Scores(ctx context.Context, from, to time.Time) ([]monitor.QualityScore, error) {
	// One aggregate per distinct answer time (few), then pick per flow. The
	// store may answer from its hourly rollup (whole hours; exact counts
	// when answer_within is one of monitor.SlowBounds).
	limits := map[time.Duration][]monitor.Agg{}
	base, err := s.Store.Aggregate(ctx, monitor.AggQuery{From: from, To: to, SlowerThan: DefaultAnswerWithin, Coarse: true, SkipP95: true})
	if err != nil {
		return nil, fmt.Errorf("quality: %w", err)
	}
	limits[DefaultAnswerWithin] = base
	var out []monitor.QualityScore
	for _, a := range base {
		r := s.rule(a.Partner, a.Flow)
		aggs, ok := limits[r.AnswerWithin]
		if !ok {
			if aggs, err = s.Store.Aggregate(ctx, monitor.AggQuery{From: from, To: to, SlowerThan: r.AnswerWithin, Coarse: true, SkipP95: true}); err != nil {
				return nil, fmt.Errorf("quality: %w", err)
			}
			limits[r.AnswerWithin] = aggs
		}
		for _, x := range aggs {
			if x.Partner == a.Partner && x.Flow == a.Flow {
				a = x
				break
			}
		}
		q := monitor.QualityScore{Partner: a.Partner, Flow: a.Flow, Events: a.Events, MinScore: r.MinScore,
			Completeness: 1, Format: 1, Timeliness: 1}
		if a.Records > 0 {
			q.Completeness = 1 - float64(a.RecordsFailed)/float64(a.Records)
		}
		if a.Events > 0 {
			q.Format = 1 - float64(a.FormatErrors)/float64(a.Events)
			q.Timeliness = 1 - float64(a.Slow)/float64(a.Events)
		}
		out = append(out, q)
	}
	if err := s.countIncidents(ctx, from, to, &out); err != nil {
		return nil, err
	}
	for i := range out {
		q := &out[i]
		q.Score = max(0, 100*(0.4*q.Completeness+0.3*q.Format+0.3*q.Timeliness)-monitor.IncidentPenalty*float64(q.Incidents))
	}
	if n := s.Config.SampleSize; n > 0 {
		for i := range out {
			if out[i].Sampled, err = s.sample(ctx, out[i].Partner, out[i].Flow, from, to, n); err != nil {
				return nil, err
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Partner != out[j].Partner {
			return out[i].Partner < out[j].Partner
		}
		return out[i].Flow < out[j].Flow
	})
	return out, nil
}

// Lister lists alerts (alert.Inbox); a Scorer whose Alerts is one counts
// the incidents of each partner flow.
type Lister interface {
	List(ctx context.Context, state monitor.AlertState, limit int) ([]monitor.Alert, error)
}

// countIncidents adds the incident alerts last seen in [from, to) to the
// scores (a partner flow with incidents and no events gets a row).
func (s *Scorer) countIncidents(ctx context.Context, from, to time.Time, out *[]monitor.QualityScore) error {
	l, ok := s.Alerts.(Lister)
	if !ok || l == nil {
		return nil
	}
	list, err := l.List(ctx, "", 5000)
	if err != nil {
		return fmt.Errorf("quality: incidents: %w", err)
	}
	for _, a := range list {
		if !slices.Contains(alert.IncidentRules, a.Rule) || a.LastAt.Before(from) || !a.LastAt.Before(to) {
			continue
		}
		i := slices.IndexFunc(*out, func(q monitor.QualityScore) bool { return q.Partner == a.Partner && q.Flow == a.Flow })
		if i < 0 {
			*out = append(*out, monitor.QualityScore{Partner: a.Partner, Flow: a.Flow, Completeness: 1, Format: 1, Timeliness: 1,
				MinScore: s.rule(a.Partner, a.Flow).MinScore})
			i = len(*out) - 1
		}
		(*out)[i].Incidents++
	}
	return nil
}

// sample picks n answered (ok, inbound) exchanges at random, reproducibly for
// the same window so that a re-run of a report shows the same sample.
func (s *Scorer) sample(ctx context.Context, partner, flow string, from, to time.Time, n int) ([]string, error) {
	evs, err := s.Store.Search(ctx, monitor.Filter{Partner: partner, Flow: flow, Status: monitor.OK, From: from, To: to, Limit: 1000})
	if err != nil {
		return nil, fmt.Errorf("quality: sample: %w", err)
	}
	seen := map[string]bool{}
	var ids []string
	for _, e := range evs {
		if e.ExchangeID != "" && !seen[e.ExchangeID] && (e.Direction == monitor.Inbound || e.Direction == "") {
			seen[e.ExchangeID] = true
			ids = append(ids, e.ExchangeID)
		}
	}
	sort.Strings(ids)
	h := fnv.New64a()
	fmt.Fprint(h, partner, flow, from.UnixMilli(), to.UnixMilli())
	r := rand.New(rand.NewPCG(h.Sum64(), 1))
	r.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	if len(ids) > n {
		ids = ids[:n]
	}
	sort.Strings(ids)
	return ids, nil
}

// Check scores the last period and raises an alert for every partner flow
// below its rule's minimum score.
func (s *Scorer) Check(ctx context.Context, period time.Duration) error {
	now := s.Clock.Now()
	scores, err := s.Scores(ctx, now.Add(-period), now)
	if err != nil {
		return err
	}
	for _, q := range scores {
		if q.MinScore > 0 && q.Score < q.MinScore && s.Alerts != nil {
			if _, err := s.Alerts.Raise(ctx, monitor.Alert{Rule: "quality", Severity: monitor.SevWarning, Partner: q.Partner, Flow: q.Flow,
				Summary: fmt.Sprintf("data-quality score %.1f below %.1f (completeness %.1f%%, format %.1f%%, timeliness %.1f%%)",
					q.Score, q.MinScore, q.Completeness*100, q.Format*100, q.Timeliness*100),
				Message: monitor.MsgQuality, Args: map[string]string{"score": dec1(q.Score), "min": dec1(q.MinScore),
					"completeness": dec1(q.Completeness * 100), "format": dec1(q.Format * 100), "timeliness": dec1(q.Timeliness * 100)}}); err != nil {
				return err
			}
		}
	}
	return nil
}

// dec1 formats with one decimal (a language-neutral message parameter).
func dec1(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }

// WriteCSV writes scores as CSV, UTF-8 with a byte-order mark so that
// spreadsheet programs in zh-CN locales read it right.
func (s *Scorer) WriteCSV(w io.Writer, scores []monitor.QualityScore) error {
	return WriteCSV(w, scores)
}

// WriteHTML writes a standalone HTML report.
func (s *Scorer) WriteHTML(w io.Writer, scores []monitor.QualityScore, from, to time.Time, lang string) error {
	return WriteHTML(w, scores, from, to, lang)
}

// WriteCSV writes scores as CSV.
func WriteCSV(w io.Writer, scores []monitor.QualityScore) error {
	if _, err := io.WriteString(w, "\uFEFF"); err != nil {
		return err
	}
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"partner", "flow", "events", "completeness", "format", "timeliness", "incidents", "score", "min_score", "sampled_exchanges"})
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) }
	for _, q := range scores {
		_ = cw.Write([]string{q.Partner, q.Flow, strconv.FormatInt(q.Events, 10), f(q.Completeness), f(q.Format),
			f(q.Timeliness), strconv.FormatInt(q.Incidents, 10), strconv.FormatFloat(q.Score, 'f', 1, 64), strconv.FormatFloat(q.MinScore, 'f', 1, 64), strings.Join(q.Sampled, " ")})
	}
	cw.Flush()
	return cw.Error()
}

var report = template.Must(template.New("report").Funcs(template.FuncMap{
	"pct": func(f float64) string { return strconv.FormatFloat(f*100, 'f', 1, 64) + "%" },
	"ts":  func(t time.Time) string { return t.In(clock.Shanghai).Format("2006-01-02 15:04") },
}).Parse(`<!DOCTYPE html>
<html lang="{{if .En}}en{{else}}zh-CN{{end}}"><head><meta charset="utf-8"><title>{{.T.title}}</title>
<style>body{font-family:"Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:2em}table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:.3em .6em}td.n{text-align:right}.bad{background:#ffc9c9}.warn{background:#ffe8b3}.ok{background:#d6f5dd}</style></head>
<body><h1>{{.T.title}}</h1><p>{{.T.window}}: {{ts .From}} — {{ts .To}} (Asia/Shanghai)</p>
<table><tr><th>{{.T.partner}}</th><th>{{.T.flow}}</th><th>{{.T.events}}</th><th>{{.T.completeness}}</th><th>{{.T.format}}</th><th>{{.T.timeliness}}</th><th>{{.T.incidents}}</th><th>{{.T.score}}</th><th>{{.T.sample}}</th></tr>
{{range .Scores}}<tr class="{{if and .MinScore (lt .Score .MinScore)}}bad{{else if lt .Score 95.0}}warn{{else}}ok{{end}}"><td>{{.Partner}}</td><td>{{.Flow}}</td><td class="n">{{.Events}}</td><td class="n">{{pct .Completeness}}</td><td class="n">{{pct .Format}}</td><td class="n">{{pct .Timeliness}}</td><td class="n">{{.Incidents}}</td><td class="n"><b>{{printf "%.1f" .Score}}</b></td><td>{{range .Sampled}}{{.}} {{end}}</td></tr>
{{end}}</table><p>{{.T.method}}</p></body></html>
`))

var reportText = map[string]map[string]string{
	"zh": {"title": "数据质量报告", "window": "统计区间", "partner": "交换方", "flow": "业务流", "events": "事件数", "completeness": "完整性",
		"format": "格式", "timeliness": "及时性", "incidents": "事故(告警)", "score": "质量分", "sample": "抽样复核(交换编号)",
		"method": "质量分 = 40% 完整性(记录未失败比例) + 30% 格式(无格式/校验错误比例) + 30% 及时性(在规定时限内应答比例),每起事故(支付失败超阈值、对账不符、汇总行不符、回盘逾期、交换方不可用、预期文件未到)扣 10 分。抽样为该区间内随机抽取的已应答交换,供人工复核。"},
	"en": {"title": "Data-quality report", "window": "Window", "partner": "Partner", "flow": "Flow", "events": "Events", "completeness": "Completeness",
		"format": "Format", "timeliness": "Timeliness", "incidents": "Incidents (alerts)", "score": "Score", "sample": "Sample for manual review (exchange ids)",
		"method": "Score = 40% completeness (share of records not failed) + 30% format (share of events without format or validation errors) + 30% timeliness (share answered within the rule's time), less 10 points per incident (failed payments above threshold, reconciliation or trailer mismatch, late return, partner down, expected file missing). The sample is drawn at random from answered exchanges of the window."},
}

// WriteHTML writes a standalone HTML report (inline CSS, no external assets).
func WriteHTML(w io.Writer, scores []monitor.QualityScore, from, to time.Time, lang string) error {
	t, ok := reportText[lang]
	if !ok {
		t = reportText["zh"]
	}
	return report.Execute(w, struct {
		T        map[string]string
		En       bool
		Scores   []monitor.QualityScore
		From, To time.Time
	}{t, lang == "en", scores, from, to})
}

// WriteReport writes quality-YYYYMMDD.html and .csv for [from, to) into dir.
func (s *Scorer) WriteReport(ctx context.Context, dir string, from, to time.Time) ([]string, error) {
	scores, err := s.Scores(ctx, from, to)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("quality: report dir: %w", err)
	}
	base := filepath.Join(dir, "quality-"+to.In(clock.Shanghai).Format("20060102-1504"))
	var files []string
	for _, f := range []struct {
		ext   string
		write func(io.Writer) error
	}{
		{".html", func(w io.Writer) error { return WriteHTML(w, scores, from, to, "zh") }},
		{".csv", func(w io.Writer) error { return WriteCSV(w, scores) }},
	} {
		name := base + f.ext
		tmp := name + ".tmp"
		fh, err := os.Create(tmp)
		if err != nil {
			return files, fmt.Errorf("quality: report: %w", err)
		}
		werr := f.write(fh)
		cerr := fh.Close()
		if werr != nil || cerr != nil {
			_ = os.Remove(tmp)
			return files, fmt.Errorf("quality: write %s: %v %v", name, werr, cerr)
		}
		if err := os.Rename(tmp, name); err != nil {
			return files, fmt.Errorf("quality: report: %w", err)
		}
		files = append(files, name)
	}
	return files, nil
}

// Run writes the periodic report every Config.ReportEvery (when ReportDir is
// set) and checks thresholds every checkEvery, until ctx is done.
func (s *Scorer) Run(ctx context.Context, checkEvery time.Duration) error {
	every := s.Config.ReportEvery
	if every <= 0 {
		every = 24 * time.Hour
	}
	nextReport := s.Clock.Now().Truncate(every).Add(every)
	for {
		if err := s.Check(ctx, every); err != nil && ctx.Err() == nil && s.Logger != nil {
			s.Logger.Warn("monitor: quality check", "err", err)
		}
		if now := s.Clock.Now(); s.Config.ReportDir != "" && !now.Before(nextReport) {
			if files, err := s.WriteReport(ctx, s.Config.ReportDir, nextReport.Add(-every), nextReport); err != nil {
				if s.Logger != nil {
					s.Logger.Warn("monitor: quality report", "err", err)
				}
			} else if s.Logger != nil {
				s.Logger.Info("monitor: quality report written", "files", files)
			}
			nextReport = nextReport.Add(every)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.Clock.After(checkEvery):
		}
	}
}
