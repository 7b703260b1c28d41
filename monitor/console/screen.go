package console

import (
	"bytes"
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

// The big screen (大屏) of the supervision room: full screen, large type,
// refreshed by itself, server-rendered SVG charts of today's volumes,
// success rates and lateness per partner family, and every family's
// worst colour.

// screenRefresh is how often the big screen reloads itself, in seconds.
const screenRefresh = 30

// familyToday is one family's figures since midnight (Asia/Shanghai).
type familyToday struct {
	Key                    string
	Band                   monitor.Band
	Events, Errors         int64
	Records, Failed        int64
	Late, Red, Amber, Live int
}

// Success is the share of events and records that did not fail (1 with none).
func (f familyToday) Success() float64 {
	s := 1.0
	if f.Events > 0 {
		s = 1 - float64(f.Errors)/float64(f.Events)
	}
	if f.Records > 0 {
		s = min(s, 1-float64(f.Failed)/float64(f.Records))
	}
	return s
}

type screenData struct {
	Families []familyToday
	Needs    []actionItem
	Volume   string
	Success  string
	Lateness string
	Hourly   string
	Counts   map[string]int
}

func (c *Console) screen(w http.ResponseWriter, r *http.Request) {
	p := c.newPage(w, r, "nav_screen")
	ctx := r.Context()
	st, err := c.overviewCells(ctx, p.Now)
	if err != nil {
		c.fail(w, "screen", err)
		return
	}
	blocks := st.blocks
	day := startOfDay(p.Now)
	aggs, err := c.d.Store.Aggregate(ctx, monitor.AggQuery{From: day, To: p.Now.Add(time.Millisecond), SkipP95: true, Coarse: true})
	if err != nil {
		c.fail(w, "screen", err)
		return
	}
	d := screenData{Counts: map[string]int{}}
	idx := map[string]int{}
	for _, b := range blocks {
		idx[b.Key] = len(d.Families)
		f := familyToday{Key: b.Key, Band: b.Band}
		for _, row := range b.Rows {
			for _, x := range row.Cells {
				d.Counts[string(x.Band)]++
				switch x.Band {
				case monitor.Red:
					f.Red++
				case monitor.Amber:
					f.Amber++
				}
				if x.Band != monitor.Grey {
					f.Live++
				}
				if x.Late > 0 || containsReason(x.Reasons, "reason_stale") {
					f.Late++
				}
			}
		}
		d.Families = append(d.Families, f)
	}
	for _, a := range aggs {
		if a.Partner == "" || a.Partner == "hub" {
			continue
		}
		i, ok := idx[familyOf(a.Partner).key]
		if !ok {
			continue
		}
		f := &d.Families[i]
		f.Events += a.Events
		f.Errors += a.Errors
		f.Records += a.Records
		f.Failed += a.RecordsFailed
	}
	names := make([]string, len(d.Families))
	vol := make([]float64, len(d.Families))
	ok := make([]float64, len(d.Families))
	late := make([]float64, len(d.Families))
	for i, f := range d.Families {
		names[i] = string(p.Family(f.Key))
		vol[i] = float64(f.Events)
		ok[i] = f.Success() * 100
		late[i] = float64(f.Late)
	}
	d.Volume = hbarChart(p.T("screen_volume"), names, vol, "#4f9be0", 0, "")
	d.Success = hbarChart(p.T("screen_success"), names, ok, "#3fb36b", 100, "%")
	d.Lateness = hbarChart(p.T("screen_lateness"), names, late, "#e0a030", 0, "")
	pts, err := c.d.Store.Series(ctx, monitor.SeriesQuery{From: day, To: day.Add(24 * time.Hour), Step: time.Hour})
	if err != nil {
		c.fail(w, "screen", err)
		return
	}
	events, errs := make([]float64, 24), make([]float64, 24)
	for _, pt := range pts {
		if i := int(pt.T.Sub(day) / time.Hour); i >= 0 && i < 24 {
			events[i], errs[i] = float64(pt.Events), float64(pt.Errors)
		}
	}
	d.Hourly = barChart(p.T("screen_hourly"), events, errs, func(i int) string {
		return day.Add(time.Duration(i) * time.Hour).In(clock.Shanghai).Format("15:04")
	})
	d.Needs = append(failingCells(p, blocks), c.actionStrip(r, p, st)...)
	p.Data = d
	p.Refresh = screenRefresh
	var buf bytes.Buffer
	if err := c.pages["screen"].ExecuteTemplate(&buf, "screen", p); err != nil {
		c.fail(w, "screen render", err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

// valueLabel prints a bar's value: a whole percentage or a count.
func valueLabel(v float64, unit string) string {
	if unit == "%" {
		return strconv.FormatFloat(math.Floor(v*10)/10, 'f', -1, 64)
	}
	return formatCount(int64(math.Round(v)))
}

func containsReason(rs []string, r string) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

// hbarChart draws one horizontal bar per label, for the big screen (dark
// background, large type). top is the scale's end (0: rounded up from the
// largest value); unit follows each value.
func hbarChart(title string, labels []string, vs []float64, colour string, top float64, unit string) string {
	const w, rowH, left, right, head = 640.0, 44.0, 170.0, 90.0, 44.0
	h := head + rowH*float64(max(len(vs), 1)) + 8
	if top <= 0 {
		top = niceCeil(maxOf(vs))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="screen-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s">`, w, h, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="8" y="28" font-size="22" font-weight="bold" fill="#e6eef7">%s</text>`, html.EscapeString(title))
	for i, v := range vs {
		y := head + rowH*float64(i)
		bw := (w - left - right) * min(v/top, 1)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" font-size="18" text-anchor="end" fill="#cfe3f5">%s</text>`, left-10, y+rowH/2+6, html.EscapeString(labels[i]))
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.1f" width="%.1f" height="%.1f" fill="#1d3b57"/>`, left, y+6, w-left-right, rowH-12)
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>`, left, y+6, bw, rowH-12, colour)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" font-size="18" fill="#ffffff">%s%s</text>`, w-right+8, y+rowH/2+6, valueLabel(v, unit), unit)
	}
	b.WriteString(`</svg>`)
	return b.String()
}
