package topology

import (
	"fmt"
	"sort"
	"strings"
)

// Place is where something is declared: a file and a line (0: unknown).
type Place struct {
	// File is the path of the file.
	File string
	// Line is 1-based; 0 when unknown.
	Line int
}

// String formats the place as file:line (file alone when the line is unknown).
func (p Place) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return p.File
}

// Problem is one finding of Check or of the declarations file.
type Problem struct {
	// Place is the route, service declaration or declaration entry at fault.
	Place
	// Topic is the topic concerned ("" when none).
	Topic string
	// Message says what is wrong and how to fix it.
	Message string
}

// String formats the problem as file:line: message, as lint prints it.
func (p Problem) String() string { return p.Place.String() + ": " + p.Message }

// Route is what the topology needs of a route (routes.Topology converts
// the engine's routes).
type Route struct {
	// ID is the route id.
	ID string
	// Partner and Flow are the route's partner id and business flow.
	Partner, Flow string
	// File is the route's file; Line the line of its id (or of its
	// instance, for an instance of a template).
	File string
	Line int
	// From is the source.
	From End
	// To are the sinks, in order.
	To []End
}

// End is a route's source or sink.
type End struct {
	// Name is a sink's name (as in mzhub_routes_sink_deliveries_total).
	Name string
	// Kind is the connector kind (http, sftp, schedule, bus, …).
	Kind string
	// Topic is the bus topic of a bus endpoint; "" for other kinds.
	Topic string
	// Line is the endpoint's line in the route's file.
	Line int
}

// NodeKind tells what a node is.
type NodeKind string

// Node kinds.
const (
	KindPartner  NodeKind = "partner"
	KindRoute    NodeKind = "route"
	KindTopic    NodeKind = "topic"
	KindService  NodeKind = "service"
	KindExternal NodeKind = "external"
)

// Node is a partner group, a route, a topic, a service or a system outside
// the hub.
type Node struct {
	// Kind tells what the node is.
	Kind NodeKind
	// ID is the partner id or group name, route id, topic, service name or
	// external system.
	ID string
	// Side is In for a partner that sends to the hub, Out for one the hub
	// sends to (a partner doing both appears twice); "" for other kinds.
	Side Direction
	// Detail is a short description (a route's flow, a service's summary,
	// a partner group's ids, an external topic's reason).
	Detail string
	// Place is where the node is declared (route file, service
	// declaration, declaration entry); zero for partners and topics.
	Place Place
}

// Key identifies the node in Model.Edges.
func (n Node) Key() string {
	if n.Side != "" {
		return string(n.Kind) + ":" + n.ID + "@" + string(n.Side)
	}
	return string(n.Kind) + ":" + n.ID
}

// Edge is one directed exchange: messages go From → To.
type Edge struct {
	// From and To are node keys.
	From, To string
	// Channel is the transport (http, sftp, bus, …).
	Channel string
	// Place is where the edge is declared: the route's endpoint, the
	// service's declaration or the declaration entry.
	Place Place
	// Meter says which of the hub's metrics count the edge's messages
	// and errors; zero when the hub cannot see the edge (an external end).
	Meter Meter
}

// Model is the topology of a set of routes, services and declarations.
type Model struct {
	// Nodes sorted by kind and id; Edges in declaration order.
	Nodes []Node
	Edges []Edge

	nodes map[string]int
	// producers and consumers of each topic (edge indexes).
	producers, consumers map[string][]int
	decls                Declarations
}

// Input is what a model is built from.
type Input struct {
	// Routes are the routes (from files or from the running engine).
	Routes []Route
	// Services are the registered service declarations (Services()).
	Services []Service
	// Declarations are the external topics (LoadDeclarations).
	Declarations Declarations
}

// Build builds the model. It does no I/O and never fails: Check says what
// is wrong.
func Build(in Input) *Model {
	m := &Model{nodes: map[string]int{}, producers: map[string][]int{}, consumers: map[string][]int{}, decls: in.Declarations}
	routeIDs := map[string]bool{}
	for _, r := range in.Routes {
		routeIDs[r.ID] = true
	}
	for _, r := range in.Routes {
		rk := m.node(Node{Kind: KindRoute, ID: r.ID, Detail: r.Flow, Place: Place{File: r.File, Line: r.Line}})
		partner := r.Partner
		if partner == "" {
			partner = "(route " + r.ID + ")"
		}
		from := Place{File: r.File, Line: r.From.Line}
		if r.From.Topic != "" {
			tk := m.node(Node{Kind: KindTopic, ID: r.From.Topic})
			m.edge(Edge{From: tk, To: rk, Channel: "bus", Place: from, Meter: routeInMeter(r.ID, true)}, "", r.From.Topic)
		} else {
			pk := m.node(Node{Kind: KindPartner, ID: partner, Side: In})
			m.edge(Edge{From: pk, To: rk, Channel: r.From.Kind, Place: from, Meter: routeInMeter(r.ID, false)}, "", "")
		}
		for _, t := range r.To {
			at := Place{File: r.File, Line: t.Line}
			if t.Topic != "" {
				tk := m.node(Node{Kind: KindTopic, ID: t.Topic})
				m.edge(Edge{From: rk, To: tk, Channel: "bus", Place: at, Meter: sinkMeter(r.ID, t.Name)}, t.Topic, "")
				continue
			}
			pk := m.node(Node{Kind: KindPartner, ID: partner, Side: Out})
			m.edge(Edge{From: rk, To: pk, Channel: t.Kind, Place: at, Meter: sinkMeter(r.ID, t.Name)}, "", "")
		}
	}
	for _, s := range in.Services {
		sk := m.node(Node{Kind: KindService, ID: s.Name, Detail: s.Summary, Place: s.place})
		for _, t := range s.Produces {
			tk := m.node(Node{Kind: KindTopic, ID: t})
			m.edge(Edge{From: sk, To: tk, Channel: "bus", Place: s.place, Meter: publishedMeter(t)}, t, "")
		}
		for _, t := range s.Consumes {
			tk := m.node(Node{Kind: KindTopic, ID: t})
			m.edge(Edge{From: tk, To: sk, Channel: "bus", Place: s.place, Meter: consumedMeter(t)}, "", t)
		}
		for _, l := range s.Partners {
			pk := m.node(Node{Kind: KindPartner, ID: l.Name, Side: l.Direction, Detail: strings.Join(l.Partners, " ")})
			e := Edge{From: pk, To: sk, Channel: l.Channel, Place: s.place, Meter: partnerMeter(l)}
			if l.Direction == Out {
				e.From, e.To = sk, pk
			}
			m.edge(e, "", "")
		}
	}
	for _, d := range in.Declarations.Topics {
		xk := m.node(Node{Kind: KindExternal, ID: d.System, Detail: d.Reason, Place: in.Declarations.Place(d)})
		tk := m.node(Node{Kind: KindTopic, ID: d.Topic})
		if d.External == ExternalConsumer {
			m.edge(Edge{From: tk, To: xk, Channel: "bus", Place: in.Declarations.Place(d)}, "", d.Topic)
		} else {
			m.edge(Edge{From: xk, To: tk, Channel: "bus", Place: in.Declarations.Place(d)}, d.Topic, "")
		}
	}
	// A bus sink may feed another route's own topic (route.<id>): that
	// route consumes it.
	for t := range m.producers {
		if id, ok := strings.CutPrefix(t, "route."); ok && routeIDs[id] && len(m.consumers[t]) == 0 {
			m.edge(Edge{From: Node{Kind: KindTopic, ID: t}.Key(), To: Node{Kind: KindRoute, ID: id}.Key(), Channel: "bus"}, "", t)
		}
	}
	// A service's edge to or from a topic is metered by the topic's own
	// counters, which are the service's only when nothing else uses that end.
	for _, idx := range []map[string][]int{m.producers, m.consumers} {
		for _, es := range idx {
			if len(es) < 2 {
				continue
			}
			for _, i := range es {
				if n, _ := m.Node(m.Edges[i].From); n.Kind == KindService {
					m.Edges[i].Meter = Meter{}
				}
				if n, _ := m.Node(m.Edges[i].To); n.Kind == KindService {
					m.Edges[i].Meter = Meter{}
				}
			}
		}
	}
	m.sortNodes()
	return m
}

// node adds n unless present and returns its key.
func (m *Model) node(n Node) string {
	k := n.Key()
	if _, ok := m.nodes[k]; !ok {
		m.nodes[k] = len(m.Nodes)
		m.Nodes = append(m.Nodes, n)
	}
	return k
}

// edge adds e; produces and consumes name the topic it writes or reads.
func (m *Model) edge(e Edge, produces, consumes string) {
	i := len(m.Edges)
	m.Edges = append(m.Edges, e)
	if produces != "" {
		m.producers[produces] = append(m.producers[produces], i)
	}
	if consumes != "" {
		m.consumers[consumes] = append(m.consumers[consumes], i)
	}
}

var kindOrder = map[NodeKind]int{KindPartner: 0, KindExternal: 1, KindRoute: 2, KindService: 3, KindTopic: 4}

func (m *Model) sortNodes() {
	sort.SliceStable(m.Nodes, func(i, j int) bool {
		a, b := m.Nodes[i], m.Nodes[j]
		if a.Kind != b.Kind {
			return kindOrder[a.Kind] < kindOrder[b.Kind]
		}
		if a.ID != b.ID {
			return a.ID < b.ID
		}
		return a.Side < b.Side
	})
	for i, n := range m.Nodes {
		m.nodes[n.Key()] = i
	}
}

// Node returns the node of a key.
func (m *Model) Node(key string) (Node, bool) {
	i, ok := m.nodes[key]
	if !ok {
		return Node{}, false
	}
	return m.Nodes[i], true
}

// Topics lists the topics of the model, sorted.
func (m *Model) Topics() []string {
	var out []string
	for _, n := range m.Nodes {
		if n.Kind == KindTopic {
			out = append(out, n.ID)
		}
	}
	return out
}

// Producers and Consumers list the edges writing and reading a topic.
func (m *Model) Producers(topic string) []Edge { return m.pick(m.producers[topic]) }

// Consumers lists the edges reading a topic.
func (m *Model) Consumers(topic string) []Edge { return m.pick(m.consumers[topic]) }

func (m *Model) pick(idx []int) []Edge {
	out := make([]Edge, len(idx))
	for i, j := range idx {
		out[i] = m.Edges[j]
	}
	return out
}

// Check reports every dangling topic: one consumed that nothing produces,
// one produced that nothing consumes (each at every route endpoint or
// service declaration involved), and a declared external topic no route or
// service uses. A topic declared external on its missing end is fine.
func (m *Model) Check() []Problem {
	var out []Problem
	for _, t := range m.Topics() {
		prod, cons := m.producers[t], m.consumers[t]
		switch {
		case !m.usedInside(t):
			// Only declarations name it: reported below.
		case len(prod) == 0:
			for _, i := range cons {
				out = append(out, Problem{Place: m.Edges[i].Place, Topic: t, Message: fmt.Sprintf(
					"topic %q is consumed by %s but nothing produces it: no route or service publishes it "+
						"(if a system outside the hub does, declare it in %s with external: producer)",
					t, m.describe(m.Edges[i].To), DeclarationsFile)})
			}
		case len(cons) == 0:
			for _, i := range prod {
				out = append(out, Problem{Place: m.Edges[i].Place, Topic: t, Message: fmt.Sprintf(
					"topic %q is produced by %s but nothing consumes it: no route or service reads it "+
						"(if a system outside the hub does, declare it in %s with external: consumer)",
					t, m.describe(m.Edges[i].From), DeclarationsFile)})
			}
		}
	}
	for _, d := range m.decls.Topics {
		if m.usedInside(d.Topic) {
			continue
		}
		out = append(out, Problem{Place: m.decls.Place(d), Topic: d.Topic, Message: fmt.Sprintf(
			"topic %q is declared external (%s, %s) but no route or service of the hub uses it", d.Topic, d.External, d.System)})
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].File != out[j].File {
			return out[i].File < out[j].File
		}
		return out[i].Line < out[j].Line
	})
	return out
}

// usedInside tells whether a route or a service produces or consumes topic.
func (m *Model) usedInside(topic string) bool {
	for _, i := range append(append([]int(nil), m.producers[topic]...), m.consumers[topic]...) {
		e := m.Edges[i]
		for _, k := range []string{e.From, e.To} {
			if n, ok := m.Node(k); ok && (n.Kind == KindRoute || n.Kind == KindService) {
				return true
			}
		}
	}
	return false
}

// describe names a node in a message ("route funeral-push", "service funeral").
func (m *Model) describe(key string) string {
	n, ok := m.Node(key)
	if !ok {
		return key
	}
	return string(n.Kind) + " " + n.ID
}
