package topology

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/clock"
)

// Running is the topology of a running hub: the routes its engine runs,
// the registered services and the declarations of its routes directory,
// measured live on its metrics. The console's topology page reads View;
// Run samples the metrics (run it on every replica: the numbers are each
// replica's own).
type Running struct {
	live     *Live
	dir      string
	routes   func() []Route
	services []Service
}

// NewRunning returns the running hub's topology: routes returns the
// engine's routes at the time of the call (nil before the engine exists),
// dir is the routes directory (its topics.yaml is read at every View), g
// the hub's metrics and c its clock (nil: the wall clock).
func NewRunning(g prometheus.Gatherer, c clock.Clock, dir string, routes func() []Route) *Running {
	return &Running{live: NewLive(g, c, DefaultWindow), dir: dir, routes: routes, services: Services()}
}

// Run samples the metrics until ctx is done.
func (r *Running) Run(ctx context.Context) error { return r.live.Run(ctx) }

// View builds the model of the running configuration and measures it. A
// problem of topics.yaml is among the view's problems (the declarations
// then count as absent).
func (r *Running) View(_ context.Context) (View, error) {
	decls, problems := LoadDeclarations(r.dir)
	var rs []Route
	if r.routes != nil {
		rs = r.routes()
	}
	v, err := r.live.Measure(Build(Input{Routes: rs, Services: r.services, Declarations: decls}))
	if err != nil {
		return View{}, err
	}
	v.Problems = append(problems, v.Problems...)
	return v, nil
}

// Window is the span of the view's rates and error counts.
func (r *Running) Window() time.Duration { return r.live.Window() }
