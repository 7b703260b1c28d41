package console_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/monitor/console"
	"github.com/shanghai-mca/mzhub/topology"
)

// fakeTopology is a model measured on counters fed over five minutes of a
// fake clock: what topology.Running gives the console in the hub.
type fakeTopology struct {
	live  *topology.Live
	model *topology.Model
}

func (f fakeTopology) View(context.Context) (topology.View, error) { return f.live.Measure(f.model) }

// topologyFixture is the shipped hub's topology (the funeral and
// disbursement services, funeral.changes read by the platform) plus a
// route whose topic nothing consumes, with five minutes of traffic.
func topologyFixture(t testing.TB) console.Topology {
	t.Helper()
	decls, ps := topology.ParseDeclarations("configs/routes/topics.yaml", []byte(`topics:
  - topic: funeral.changes
    external: consumer
    system: 殡葬管理平台
    reason: the platform reads the bus
`))
	if ps != nil {
		t.Fatal(ps)
	}
	model := topology.Build(topology.Input{
		Routes: []topology.Route{{ID: "district-notices", Partner: "district", Flow: "notices", File: "configs/routes/notices.yaml", Line: 1,
			From: topology.End{Kind: "http", Line: 5}, To: []topology.End{{Name: "bus", Kind: "bus", Topic: "district.notices", Line: 9}}}},
		Services: []topology.Service{
			{Name: "funeral", Summary: "partner API", Produces: []string{"funeral.changes"}, Partners: []topology.PartnerLink{
				{Name: "funeral homes", Partners: []string{"funeral.*"}, Direction: topology.In, Channel: "http", Flows: []string{"funeral-api"}}}},
			{Name: "disbursement", Partners: []topology.PartnerLink{
				{Name: "banks", Partners: []string{"bank.*"}, Direction: topology.Out, Channel: "sftp", Flows: []string{"disbursement"}}}},
		},
		Declarations: decls,
	})
	reg := prometheus.NewRegistry()
	exchanges := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mzhub_exchanges_total"}, []string{"partner", "flow", "direction", "outcome"})
	published := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mzhub_bus_published_total"}, []string{"bus", "topic"})
	received := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mzhub_routes_received_total"}, []string{"route"})
	deliveries := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mzhub_routes_sink_deliveries_total"}, []string{"route", "sink", "outcome"})
	reg.MustRegister(exchanges, published, received, deliveries)
	fc := clock.NewFake(now)
	live := topology.NewLive(reg, fc, 5*time.Minute)
	if err := live.Sample(); err != nil {
		t.Fatal(err)
	}
	fc.Advance(5 * time.Minute)
	exchanges.WithLabelValues("funeral.fh01", "funeral-api", "in", "ok").Add(600)
	exchanges.WithLabelValues("bank.boc", "disbursement", "out", "ok").Add(38)
	exchanges.WithLabelValues("bank.ccb", "disbursement", "out", "error").Add(2)
	published.WithLabelValues("local", "funeral.changes").Add(590)
	received.WithLabelValues("district-notices").Add(50)
	deliveries.WithLabelValues("district-notices", "bus", "sent").Add(47)
	deliveries.WithLabelValues("district-notices", "bus", "failed").Add(3)
	return fakeTopology{live: live, model: model}
}

func TestTopologyPage(t *testing.T) {
	srv := newServer(t, console.Deps{Store: seeded(t), Clock: clock.NewFake(now), Topology: topologyFixture(t)})
	checkPages(t, srv, []pageWant{
		{"/console/topology", []string{
			"拓扑", `href="/console/topology" class="active"`, "近 5 分钟",
			// The dangling topic, at its route.
			"悬空主题", "configs/routes/notices.yaml:9", `topic &#34;district.notices&#34; is produced by route district-notices but nothing consumes it`,
			// The diagram: every kind of node, edges coloured by traffic and errors.
			`<svg class="topology"`, `class="node partner"`, `class="node route"`, `class="node topic"`, `class="node service"`, `class="node external"`,
			"殡葬管理平台", `class="edge busy"`, `class="edge err"`, `class="edge unmetered"`, "120/分", "8/分 · 2错",
			// The table: rates per minute, errors in the window, totals, places.
			`data-from="partner:funeral homes@in" data-to="service:funeral"`, `<td class="num">120</td>`,
			`data-from="service:disbursement" data-to="partner:banks@out"`, `<td class="num">2</td>`,
			`data-from="route:district-notices" data-to="topic:district.notices"`, `<td class="num">9.4</td>`,
			`data-from="topic:funeral.changes" data-to="external:殡葬管理平台"`, "不可计量", "configs/routes/topics.yaml:2",
		}},
		{"/console/topology?lang=en", []string{"Topology", "Dangling topics", "Rate (per minute)", "external system", "not metered", "120/min"}},
	})
	// Without a topology the page and its link are absent.
	bare := newServer(t, console.Deps{Store: seeded(t), Clock: clock.NewFake(now)})
	if code, _ := get(t, bare, "/console/topology"); code != 404 {
		t.Errorf("topology without a source: %d, want 404", code)
	}
	if _, body := get(t, bare, "/console/"); strings.Contains(body, "/console/topology") {
		t.Error("nav links a missing topology page")
	}
}
