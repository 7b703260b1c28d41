package routes

import (
	"sort"
	"strconv"
	"strings"

	"github.com/shanghai-mca/mzhub/topology"
)

// What the hub's topology (package topology) reads of a route: where its
// endpoints are declared and which bus topics they name.

// BusTopic returns the topic of a bus endpoint and true, or "" and false
// for an endpoint of another kind (or a bus endpoint whose configuration
// does not decode; lint reports that).
func (e *Endpoint) BusTopic() (string, bool) {
	if e.Kind != kindBus {
		return "", false
	}
	var c BusEndpointConfig
	if err := decodeStrict(&e.Config, &c); err != nil || c.Topic == "" {
		return "", false
	}
	return c.Topic, true
}

// Line returns the line, in File, of the element at path of the route
// ("from"; "to", 2; "id"), or of its closest ancestor when the element is
// absent. For an instance of a template it is the instance's line in the
// instances file. 0 when unknown (a route built in code).
func (r *Route) Line(path ...any) int {
	if r.origin != "" {
		if i := strings.LastIndexByte(r.origin, ':'); i >= 0 {
			n, _ := strconv.Atoi(r.origin[i+1:])
			return n
		}
	}
	return nodeLine(r.root, path...)
}

// Definitions returns the routes the engine runs, or has loaded and starts
// with Run, sorted by id. The routes are shared with the engine: read them,
// never change them.
func (e *Engine) Definitions() []*Route {
	e.mu.Lock()
	defer e.mu.Unlock()
	byID := map[string]*Route{}
	for _, r := range e.loaded {
		byID[r.ID] = r
	}
	for id, rn := range e.runners {
		byID[id] = rn.r
	}
	for id, sk := range e.skipped {
		byID[id] = sk.r
	}
	out := make([]*Route, 0, len(byID))
	for _, r := range byID {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// SinkNames returns the names of the route's sinks in order, with the
// defaults the engine gives unnamed ones (the kind, then kind-2, …): the
// names of the sink label of mzhub_routes_sink_deliveries_total.
func (r *Route) SinkNames() []string {
	c := Route{To: append([]Endpoint(nil), r.To...)}
	c.withDefaults()
	out := make([]string, len(c.To))
	for i, t := range c.To {
		out[i] = t.Name
	}
	return out
}

// Topology returns what the hub's topology model needs of the routes: their
// partners, where they are declared, and the topics their bus endpoints name.
func Topology(rs []*Route) []topology.Route {
	out := make([]topology.Route, 0, len(rs))
	for _, r := range rs {
		tr := topology.Route{ID: r.ID, Partner: r.Partner, Flow: r.Flow, File: r.File(), Line: r.Line("id"),
			From: topology.End{Kind: r.From.Kind, Line: r.Line("from", "config", "topic")}}
		tr.From.Topic, _ = r.From.BusTopic()
		names := r.SinkNames()
		for i := range r.To {
			e := topology.End{Name: names[i], Kind: r.To[i].Kind, Line: r.Line("to", i, "config", "topic")}
			e.Topic, _ = r.To[i].BusTopic()
			tr.To = append(tr.To, e)
		}
		if r.ReplyTo != "" {
			// The answers are published on reply_to: a topic the route produces.
			tr.To = append(tr.To, topology.End{Name: replySinkName, Kind: kindBus, Topic: r.ReplyTo, Line: r.Line("reply_to")})
		}
		out = append(out, tr)
	}
	return out
}
