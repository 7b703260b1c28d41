package hubmon

import (
	"context"

	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/console"
)

// provision wires expectations, alerts and quality (when a state DB is given).
func (m *Monitor) provision(ctx context.Context, d Deps, cd *console.Deps) error {
	return nil
}

func openClickHouse(ctx context.Context, cfg monitor.Config) (monitor.Store, error) {
	return nil, errNoClickHouse
}
