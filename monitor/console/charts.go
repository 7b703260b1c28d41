package console

import (
	"fmt"
	"html"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor"
)

func startOfDay(t time.Time) time.Time {
	t = t.In(clock.Shanghai)
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, clock.Shanghai)
}

var windows = map[string]struct {
	span, step time.Duration
}{
	"1h":  {time.Hour, time.Minute},
	"24h": {24 * time.Hour, time.Hour},
	"7d":  {7 * 24 * time.Hour, 6 * time.Hour},
}

func (c *Console) charts(w http.ResponseWriter, r *http.Request) {
	p := c.newPage(w, r, "nav_charts")
	q := r.URL.Query()
	win := q.Get("window")
	if _, ok := windows[win]; !ok {
		win = "24h"
	}
	spec := windows[win]
	to := p.Now.Truncate(spec.step).Add(spec.step)
	from := to.Add(-spec.span)
	pts, err := c.d.Store.Series(r.Context(), monitor.SeriesQuery{From: from, To: to, Step: spec.step,
		Partner: q.Get("partner"), Flow: q.Get("flow")})
	if err != nil {
		c.fail(w, "charts", err)
		return
	}
	// Fill empty buckets so the x axis is regular.
	n := int(spec.span / spec.step)
	events := make([]float64, n)
	errs := make([]float64, n)
	lat := make([]float64, n)
	for _, pt := range pts {
		i := int(pt.T.Sub(from) / spec.step)
		if i >= 0 && i < n {
			events[i], errs[i] = float64(pt.Events), float64(pt.Errors)
			lat[i] = float64(pt.P95.Microseconds()) / 1000
		}
	}
	labels := func(i int) string {
		return from.Add(time.Duration(i) * spec.step).In(clock.Shanghai).Format("01-02 15:04")
	}
	p.Data = struct {
		Window     string
		Throughput string
		Latency    string
		Q          map[string]string
	}{
		Window:     win,
		Throughput: barChart(p.T("throughput"), events, errs, labels),
		Latency:    lineChart(p.T("latency"), lat, labels),
		Q:          map[string]string{"partner": q.Get("partner"), "flow": q.Get("flow")},
	}
	c.render(w, p, "charts")
}

const chartW, chartH, padL, padB, padT = 720.0, 240.0, 56.0, 28.0, 24.0

func maxOf(vs []float64) float64 {
	m := 0.0
	for _, v := range vs {
		m = max(m, v)
	}
	if m == 0 {
		return 1
	}
	return m
}

// niceCeil rounds v up to the top of a scale of four round steps (1, 2 or
// 5 times a power of ten each), so that every tick is a round number (no
// 28.969 ms: 28.969 gets a scale of 0, 10, 20, 30, 40).
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 4
	}
	q := v / 4
	p := math.Pow(10, math.Floor(math.Log10(q)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= q*(1-1e-9) {
			return 4 * m * p
		}
	}
	return 40 * p
}

// tickLabel formats a tick value with the decimals its scale's step needs
// (none from a step of 1 up); thousands get separators.
func tickLabel(v, top float64) string {
	step := top / 4
	if step >= 1 || step <= 0 {
		return formatCount(int64(math.Round(v)))
	}
	dec := int(math.Ceil(-math.Log10(step) - 1e-9))
	return strconv.FormatFloat(v, 'f', dec, 64)
}

func axes(b *strings.Builder, title string, top float64, n int, label func(int) string) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s">`,
		chartW, chartH, chartW, chartH, html.EscapeString(title))
	fmt.Fprintf(b, `<text x="%.0f" y="16" font-size="13" font-weight="bold">%s</text>`, padL, html.EscapeString(title))
	plotH := chartH - padB - padT
	for i := 0; i <= 4; i++ {
		y := padT + plotH*float64(i)/4
		fmt.Fprintf(b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#e4ecf4"/>`, padL, chartW-8, y, y)
		fmt.Fprintf(b, `<text x="%.0f" y="%.1f" font-size="10" text-anchor="end">%s</text>`, padL-4, y+3, tickLabel(top*float64(4-i)/4, top))
	}
	for _, i := range []int{0, n / 2, n - 1} {
		if i < 0 {
			continue
		}
		x := padL + (chartW-padL-8)*(float64(i)+0.5)/float64(n)
		anchor := "middle"
		if i == n-1 && n > 1 {
			anchor = "end"
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%.0f" font-size="10" text-anchor="%s">%s</text>`, x, chartH-8, anchor, label(i))
	}
}

// barChart draws events as blue bars with their errors in red.
func barChart(title string, events, errs []float64, label func(int) string) string {
	var b strings.Builder
	n := len(events)
	top := niceCeil(maxOf(events))
	axes(&b, title, top, n, label)
	plotH := chartH - padB - padT
	bw := (chartW - padL - 8) / float64(max(n, 1))
	for i := range events {
		x := padL + bw*float64(i)
		h := plotH * events[i] / top
		fmt.Fprintf(&b, `<rect class="bar" x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#3e7cb1"><title>%s: %.0f</title></rect>`,
			x+1, padT+plotH-h, max(bw-2, 1), h, label(i), events[i])
		if errs[i] > 0 {
			eh := plotH * errs[i] / top
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#c62828"/>`, x+1, padT+plotH-eh, max(bw-2, 1), eh)
		}
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// lineChart draws one series as a polyline.
func lineChart(title string, vs []float64, label func(int) string) string {
	var b strings.Builder
	n := len(vs)
	top := niceCeil(maxOf(vs))
	axes(&b, title, top, n, label)
	plotH := chartH - padB - padT
	var pts []string
	for i, v := range vs {
		x := padL + (chartW-padL-8)*(float64(i)+0.5)/float64(max(n, 1))
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, padT+plotH-plotH*v/top))
	}
	fmt.Fprintf(&b, `<polyline fill="none" stroke="#e07b00" stroke-width="2" points="%s"/></svg>`, strings.Join(pts, " "))
	return b.String()
}

func (c *Console) qualityWindow(r *http.Request) (time.Time, time.Time) {
	to := c.d.Clock.Now()
	days, _ := strconv.Atoi(r.URL.Query().Get("days"))
	if days <= 0 || days > 92 {
		days = 7
	}
	return to.AddDate(0, 0, -days), to
}

func (c *Console) quality(w http.ResponseWriter, r *http.Request) {
	if c.d.Quality == nil {
		c.notFound(w, r)
		return
	}
	p := c.newPage(w, r, "nav_quality")
	from, to := c.qualityWindow(r)
	rows, err := c.d.Quality.Scores(r.Context(), from, to)
	if err != nil {
		c.fail(w, "quality", err)
		return
	}
	p.Data = struct {
		Rows     []monitor.QualityScore
		From, To time.Time
	}{rows, from, to}
	c.render(w, p, "quality")
}

// qualityReport downloads the report as CSV or as a standalone HTML page.
func (c *Console) qualityReport(w http.ResponseWriter, r *http.Request) {
	if c.d.Quality == nil {
		c.notFound(w, r)
		return
	}
	from, to := c.qualityWindow(r)
	rows, err := c.d.Quality.Scores(r.Context(), from, to)
	if err != nil {
		c.fail(w, "quality report", err)
		return
	}
	name := "mzhub-quality-" + to.In(clock.Shanghai).Format("20060102")
	switch r.PathValue("format") {
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.csv"`)
		_ = c.d.Quality.WriteCSV(w, rows)
	case "html":
		l := "zh"
		if lang(w, r) == 1 {
			l = "en"
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`.html"`)
		_ = c.d.Quality.WriteHTML(w, rows, from, to, l)
	default:
		c.notFound(w, r)
	}
}
