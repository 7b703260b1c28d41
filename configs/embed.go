// Package configs embeds the shipped configuration files so the binary runs
// its embedded default profile from any directory.
package configs

import "embed"

// Embedded is the embedded profile (mzhub.yaml), the default when no
// --config is given.
//
//go:embed mzhub.yaml
var Embedded []byte

// Cluster is the cluster profile (cluster.yaml).
//
//go:embed cluster.yaml
var Cluster []byte

// Shipped holds the shipped partner, route and mapping files (partners/,
// routes/, mappings/), so that `mzhub demo` runs from a binary outside the
// source tree.
//
//go:embed partners routes mappings
var Shipped embed.FS
