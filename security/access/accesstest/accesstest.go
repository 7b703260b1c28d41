// Package accesstest puts the real partner guard (security/access) in front
// of a handler under test, as the hub does in front of every partner API, so
// that tests reach an API through the one authentication that runs in
// production and the API reads the identity the guard put in the request
// context (security.PartnerFrom).
package accesstest

import (
	"encoding/hex"
	"math"
	"testing"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/security"
	"github.com/shanghai-mca/mzhub/security/access"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/audit/audittest"
	"github.com/shanghai-mca/mzhub/security/keys"
)

// Options configure Guard.
type Options struct {
	// Partners are the access rules (services/funeral's Registry.AccessRules
	// gives them for the funeral registry).
	Partners []security.PartnerAccess
	// Secret returns the signing secret of a key id; every key id of
	// Partners is provisioned with it.
	Secret func(keyID string) []byte
	// Clock is the guard's time (signature window, nonces, rate limits);
	// nil is the wall clock.
	Clock clock.Clock
	// Audit receives a record per call; nil is a fresh audittest.Recorder.
	Audit audit.Appender
}

// Guard returns the guard with the default configuration of
// security.partner_api, except that its rate limits are set so high that a
// test never meets them (tests of the limits build their own guard).
// Nonces are remembered in memory.
func Guard(t testing.TB, o Options) *access.PartnerAuth {
	t.Helper()
	var env []string
	for _, p := range o.Partners {
		for _, k := range p.KeyIDs {
			env = append(env, keys.EnvName(keys.PartnerPrefix+k)+"="+hex.EncodeToString(o.Secret(k)))
		}
	}
	if o.Audit == nil {
		o.Audit = &audittest.Recorder{}
	}
	cfg := security.DefaultConfig().PartnerAPI
	cfg.Partners = o.Partners
	cfg.PartnerRate, cfg.PartnerBurst = math.MaxInt32, math.MaxInt32
	cfg.IPRate, cfg.IPBurst = math.MaxInt32, math.MaxInt32
	g, err := access.New(access.Options{Config: cfg, Keys: keys.NewEnv(func() []string { return env }),
		Nonces: access.NewMemoryNonces(), Audit: o.Audit, Clock: o.Clock})
	if err != nil {
		t.Fatalf("accesstest: %v", err)
	}
	return g
}
