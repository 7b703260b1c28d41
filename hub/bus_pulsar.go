//go:build !mzhub_embedded

package hub

import (
	"context"
	"log/slog"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/bus/pulsar"
)

// Flavour names what this binary links: "full" (both profiles) or
// "embedded" (deploy/build.sh's mzhub-embedded-*, built with -tags
// mzhub_embedded: no Pulsar or ClickHouse client, for the embedded profile).
const Flavour = "full"

func openPulsar(ctx context.Context, cfg bus.PulsarConfig, log *slog.Logger) (bus.Bus, error) {
	return pulsar.Open(ctx, cfg, log)
}
