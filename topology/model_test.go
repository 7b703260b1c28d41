package topology

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/bus"
)

func httpIn(id, partner string, sinks ...End) Route {
	return Route{ID: id, Partner: partner, File: id + ".yaml", Line: 1, From: End{Kind: "http", Line: 5}, To: sinks}
}

func busIn(id, topic string, sinks ...End) Route {
	return Route{ID: id, Partner: "p", File: id + ".yaml", Line: 1, From: End{Kind: "bus", Topic: topic, Line: 6}, To: sinks}
}

func toTopic(topic string, line int) End {
	return End{Name: "bus", Kind: "bus", Topic: topic, Line: line}
}

func toHTTP(line int) End { return End{Name: "http", Kind: "http", Line: line} }

func decls(t *testing.T, text string) Declarations {
	t.Helper()
	d, ps := ParseDeclarations("topics.yaml", []byte(text))
	if ps != nil {
		t.Fatalf("declarations: %v", ps)
	}
	return d
}

func TestCheck(t *testing.T) {
	svc := Service{Name: "svc", Produces: []string{"svc.out"}, Consumes: []string{"svc.in"}, place: Place{File: "services/svc/topology.go", Line: 9}}
	for _, tc := range []struct {
		name     string
		in       Input
		problems []string
	}{
		{name: "empty"},
		{name: "a chain of routes is closed", in: Input{Routes: []Route{
			httpIn("a", "x", toTopic("t1", 10)), busIn("b", "t1", toHTTP(12)),
		}}},
		{name: "produced, never consumed", in: Input{Routes: []Route{httpIn("a", "x", toTopic("t1", 10), toHTTP(11))}},
			problems: []string{`a.yaml:10: topic "t1" is produced by route a but nothing consumes it`}},
		{name: "consumed, never produced", in: Input{Routes: []Route{busIn("b", "t1", toHTTP(12))}},
			problems: []string{`b.yaml:6: topic "t1" is consumed by route b but nothing produces it`}},
		{name: "every producer is named", in: Input{Routes: []Route{httpIn("a", "x", toTopic("t1", 10)), httpIn("c", "x", toTopic("t1", 20))}},
			problems: []string{`a.yaml:10: topic "t1" is produced by route a`, `c.yaml:20: topic "t1" is produced by route c`}},
		{name: "a service closes routes' topics", in: Input{Routes: []Route{
			httpIn("a", "x", toTopic("svc.in", 10)), busIn("b", "svc.out", toHTTP(12)),
		}, Services: []Service{svc}}},
		{name: "a service's dangling topics are at its declaration", in: Input{Services: []Service{svc}}, problems: []string{
			`services/svc/topology.go:9: topic "svc.in" is consumed by service svc but nothing produces it`,
			`services/svc/topology.go:9: topic "svc.out" is produced by service svc but nothing consumes it`,
		}},
		{name: "external ends close topics", in: Input{Services: []Service{svc}, Declarations: decls(t, `
topics:
  - {topic: svc.out, external: consumer, system: platform, reason: it reads the bus}
  - {topic: svc.in, external: producer, system: ministry, reason: it writes the bus}
`)}},
		{name: "an external end on the wrong side does not", in: Input{Services: []Service{svc}, Declarations: decls(t, `
topics:
  - {topic: svc.out, external: producer, system: platform, reason: it writes too}
  - {topic: svc.in, external: producer, system: ministry, reason: it writes the bus}
`)}, problems: []string{
			`services/svc/topology.go:9: topic "svc.out" is produced by service svc but nothing consumes it`,
			`topics.yaml:3: topic "svc.out" is produced by external platform but nothing consumes it`,
		}},
		{name: "an unused declaration", in: Input{Declarations: decls(t, `
topics:
  - {topic: gone, external: consumer, system: platform, reason: it read the bus once}
`)}, problems: []string{`topics.yaml:3: topic "gone" is declared external (consumer, platform) but no route or service of the hub uses it`}},
		{name: "a sink feeding another route's own topic", in: Input{Routes: []Route{
			httpIn("a", "x", toTopic("route.b", 10)), httpIn("b", "y", toHTTP(12)),
		}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Build(tc.in).Check()
			if len(got) != len(tc.problems) {
				t.Fatalf("problems %v, want %d: %v", got, len(tc.problems), tc.problems)
			}
			for i, want := range tc.problems {
				if !strings.HasPrefix(got[i].String(), want) {
					t.Errorf("problem %d = %q, want prefix %q", i, got[i], want)
				}
			}
		})
	}
}

func TestBuildEdges(t *testing.T) {
	svc := Service{Name: "funeral", Produces: []string{"funeral.changes"}, Partners: []PartnerLink{
		{Name: "homes", Partners: []string{"funeral.*"}, Direction: In, Channel: "http", Flows: []string{"funeral-api"}},
		{Name: "homes", Partners: []string{"funeral.*"}, Direction: Out, Channel: "http"},
	}}
	m := Build(Input{
		Routes:   []Route{busIn("platform", "funeral.changes", toHTTP(12)), httpIn("push", "funeral", toTopic("funeral.changes", 9))},
		Services: []Service{svc},
	})
	var got []string
	for _, e := range m.Edges {
		got = append(got, e.From+" -> "+e.To+" ["+e.Channel+"]")
	}
	want := []string{
		"topic:funeral.changes -> route:platform [bus]",
		"route:platform -> partner:p@out [http]",
		"partner:funeral@in -> route:push [http]",
		"route:push -> topic:funeral.changes [bus]",
		"service:funeral -> topic:funeral.changes [bus]",
		"partner:homes@in -> service:funeral [http]",
		"service:funeral -> partner:homes@out [http]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("edges\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The topic has two producers: the service's own share cannot be told
	// from the topic's counter, so its edge is not metered; the routes' are.
	for _, e := range m.Edges {
		switch {
		case e.From == "service:funeral" && e.To == "topic:funeral.changes":
			if e.Meter.Metered() {
				t.Errorf("shared topic: service edge metered by %v", e.Meter)
			}
		case e.To == "partner:homes@out":
			if e.Meter.Metered() {
				t.Errorf("a link without flows is metered: %v", e.Meter)
			}
		case !e.Meter.Metered():
			t.Errorf("edge %s -> %s not metered", e.From, e.To)
		}
	}
	if got := m.Producers("funeral.changes"); len(got) != 2 {
		t.Errorf("producers %v", got)
	}
	if got := m.Consumers("funeral.changes"); len(got) != 1 || got[0].To != "route:platform" {
		t.Errorf("consumers %v", got)
	}
}

func TestDeclarationsProblems(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"topics:\n  - {topic: t, external: both, system: s, reason: r}\n", `topics.yaml:2: topics[0]: external: "both" is not consumer or producer`},
		{"topics:\n  - {topic: t, external: consumer, reason: r}\n", "topics.yaml:2: topics[0]: system: name the system outside the hub"},
		{"topics:\n  - {topic: t, external: consumer, system: s}\n", "topics.yaml:2: topics[0]: reason: say why"},
		{"topics:\n  - {external: consumer, system: s, reason: r}\n", "topics.yaml:2: topics[0]: topic is required"},
		{"topics:\n  - {topic: t, external: consumer, system: s, reason: r}\n  - {topic: t, external: consumer, system: s, reason: r}\n",
			`topics.yaml:3: topics[1]: topic "t" is declared external consumer twice (also line 2)`},
		{"topics:\n  - {topic: t, externl: consumer}\n", "topics.yaml:2: topics declaration: field externl not found"},
	} {
		_, ps := ParseDeclarations("topics.yaml", []byte(tc.text))
		if len(ps) != 1 || !strings.HasPrefix(ps[0].String(), tc.want) {
			t.Errorf("%q: problems %v, want %q", tc.text, ps, tc.want)
		}
	}
	if d, ps := LoadDeclarations(t.TempDir()); ps != nil || len(d.Topics) != 0 {
		t.Errorf("missing file: %v %v", d, ps)
	}
}

type capture struct{ topics []string }

func (c *capture) Publish(_ context.Context, topic string, _ ...bus.Message) error {
	c.topics = append(c.topics, topic)
	return nil
}

func TestGuardRefusesUndeclaredTopics(t *testing.T) {
	c := &capture{}
	g := Service{Name: "svc", Produces: []string{"svc.out"}}.Guard(c)
	if err := g.Publish(context.Background(), "svc.out", bus.Message{}); err != nil {
		t.Fatal(err)
	}
	err := g.Publish(context.Background(), "svc.other", bus.Message{})
	if !errors.Is(err, ErrUndeclaredTopic) {
		t.Fatalf("undeclared topic: %v", err)
	}
	if strings.Join(c.topics, ",") != "svc.out" {
		t.Fatalf("published %v", c.topics)
	}
}

func TestRegisterServiceRefusesBadDeclarations(t *testing.T) {
	for _, s := range []Service{
		{},
		{Name: "x", Produces: []string{""}},
		{Name: "x", Partners: []PartnerLink{{Name: "banks", Partners: []string{"bank.*"}, Direction: "sideways"}}},
		{Name: "x", Partners: []PartnerLink{{Name: "banks", Direction: In}}},
	} {
		if err := s.validate(); err == nil {
			t.Errorf("%+v: no error", s)
		}
	}
}

func TestSeriesMatch(t *testing.T) {
	s := Series{Metric: "m", Labels: map[string][]string{"partner": {"bank.*", "funeral.fh01"}, "outcome": {"ok"}}}
	for _, tc := range []struct {
		ls   map[string]string
		want bool
	}{
		{map[string]string{"partner": "bank.boc", "outcome": "ok", "flow": "x"}, true},
		{map[string]string{"partner": "funeral.fh01", "outcome": "ok"}, true},
		{map[string]string{"partner": "funeral.fh02", "outcome": "ok"}, false},
		{map[string]string{"partner": "bank.boc", "outcome": "error"}, false},
		{map[string]string{"outcome": "ok"}, false},
	} {
		if got := s.matches(tc.ls); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.ls, got, tc.want)
		}
	}
}
