// Package banks embeds the shipped configurations of the six partner banks
// (one YAML per bank) so that the bank simulators and the demo run from any
// directory.
package banks

import "embed"

// FS holds <code>.yaml for each bank.
//
//go:embed *.yaml
var FS embed.FS
