package funeral

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/shanghai-mca/mzhub/store"
)

// OpenSandbox opens the sandbox: the same partner API over an isolated
// store, the SQLite file SandboxDBFile in dataDir, with cfg.Environment set
// to sandbox (so only partners enabled for the sandbox are served). deps
// is used as for NewAPI except Store, which the sandbox opens itself; the
// bus is left out so sandbox data never reaches the bureau's systems.
// Close the API, then the returned store.
//
// Mount it on its own host name (sandbox.…) or under a prefix with
// http.StripPrefix (e.g. /sandbox/partner/v1/… → /partner/v1/…) behind the
// same partner-auth middleware; the signature covers the path the partner
// requested, so both work.
func OpenSandbox(ctx context.Context, cfg Config, deps Deps, dataDir string) (*API, *store.DB, error) {
	sc := store.DefaultConfig()
	sc.Path = filepath.Join(dataDir, SandboxDBFile)
	db, err := store.Open(ctx, sc)
	if err != nil {
		return nil, nil, fmt.Errorf("funeral sandbox: %w", err)
	}
	cfg.Environment = EnvSandbox
	deps.Store = db
	deps.Bus = nil
	if deps.Logger != nil {
		deps.Logger = deps.Logger.With("env", EnvSandbox)
	}
	api, err := NewAPI(ctx, cfg, deps)
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	return api, db, nil
}
