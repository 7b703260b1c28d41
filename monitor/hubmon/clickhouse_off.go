//go:build mzhub_embedded

package hubmon

import (
	"context"
	"errors"

	"github.com/shanghai-mca/mzhub/monitor"
)

func openClickHouse(context.Context, monitor.Config) (monitor.Store, error) {
	return nil, errors.New("monitor.store: clickhouse: this is the embedded-only build of mzhub (mzhub-embedded-*, -tags mzhub_embedded), without the ClickHouse client: run the full build (mzhub-<os>-<arch>) for the cluster profile")
}
