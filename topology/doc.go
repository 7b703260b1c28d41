// Package topology is the hub's map of its flows: for every bus topic, who
// produces it and who consumes it — routes (configs/routes), services
// (declared in code with RegisterService) and, at the edges, partners and
// systems outside the hub (configs/routes/topics.yaml).
//
// One model serves two readers: `mzhub lint` checks it (Check: a topic
// consumed but never produced, or produced but never consumed, unless
// declared external), and the console draws it from the running hub's
// loaded routes and registered services, each edge with its live rate and
// error count (Live, from the hub's own metrics).
//
// A service declares what it exchanges once, in its package:
//
//	var Topology = topology.Service{Name: "funeral", Produces: []string{TopicChanges}, ...}
//
//	func init() { topology.RegisterService(Topology) }
//
// and publishes only through Topology.Guard(bus), which refuses a topic the
// declaration does not list: a service cannot publish an undeclared topic
// without its own tests failing.
package topology
