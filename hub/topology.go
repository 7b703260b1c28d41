package hub

import (
	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/topology"
)

// wireTopology builds what the console's topology page draws: the route
// engine's routes (once it is wired), the registered services and the
// routes directory's topics.yaml, measured on the hub's metrics. Its
// sampler runs on every replica (the numbers are each replica's own).
func (h *Hub) wireTopology() *topology.Running {
	t := topology.NewRunning(h.Gatherer(), h.Clock(), h.Config().Paths.Routes, func() []topology.Route {
		if h.engine == nil {
			return nil
		}
		return routes.Topology(h.engine.Definitions())
	})
	h.AddComponent("topology", t)
	return t
}
