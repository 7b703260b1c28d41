//go:build !mzhub_embedded

package hubmon

import (
	"context"

	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/store/clickhouse"
)

func openClickHouse(ctx context.Context, cfg monitor.Config) (monitor.Store, error) {
	c := cfg.ClickHouse
	return clickhouse.Open(ctx, clickhouse.Options{Addr: c.Addr, Database: c.Database, Username: c.Username, Password: c.Password})
}
