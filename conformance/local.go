package conformance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/shanghai-mca/mzhub/apispec"
	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/problem"
	"github.com/shanghai-mca/mzhub/services/funeral"
)

// LocalOptions configure a local sandbox (`mzhub sandbox`).
type LocalOptions struct {
	// Listen is the address to serve on (host:port; port 0 picks one).
	Listen string
	// DataDir holds the sandbox's store, funeral.SandboxDBFile, as in a
	// hub's data directory.
	DataDir string
	// Partner is the integrator's partner; it must be enabled for the
	// sandbox and list KeyID.
	Partner funeral.Partner
	// KeyID and Secret are the partner's signing key.
	KeyID  string
	Secret []byte
	// Logger receives the server's logs (discarded when nil).
	Logger *slog.Logger
	// MaxHeaderBytes is the hub's http.max_header_bytes: a larger request
	// line plus headers gets 431 headers_too_large, as from the hub (0:
	// the hub's default).
	MaxHeaderBytes int
}

// LocalSandbox is the partner API's sandbox served as the hosted hub
// serves it: the funeral API over its own store (funeral.OpenSandbox, the
// store the hosted hub keeps beside its main one), under /sandbox/ behind
// the hub's partner guard (signature, nonces, allowlist, rate limits and an
// audit record per call), and the published specs under /docs/api/.
type LocalSandbox struct {
	// Addr is the address served (host:port).
	Addr string
	// DBPath is the sandbox's store, which `mzhub conformance --role
	// pusher` reads.
	DBPath string
	srv    *http.Server
	done   chan struct{}
}

// URL is the base URL of the sandbox's partner API, prefix included:
// requests go to URL()+"/halls/H-001" and are signed over that whole path.
func (s *LocalSandbox) URL() string { return "http://" + s.Addr + SandboxPrefix }

// StartLocal opens the sandbox's store in opts.DataDir and serves it on
// opts.Listen until Close.
func StartLocal(ctx context.Context, opts LocalOptions) (*LocalSandbox, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !opts.Partner.Allowed(funeral.EnvSandbox) {
		return nil, fmt.Errorf("sandbox: partner %s is not enabled for the sandbox", opts.Partner.ID)
	}
	reg, err := funeral.NewRegistry([]funeral.Partner{opts.Partner})
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	api, db, err := funeral.OpenSandbox(ctx, funeral.DefaultConfig(), funeral.Deps{Partners: reg, Logger: log}, opts.DataDir)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*LocalSandbox, error) {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = api.Close(cctx)
		_ = db.Close()
		return nil, err
	}
	guard, err := sandboxGuard(ctx, db, reg, opts.KeyID, opts.Secret, false)
	if err != nil {
		return fail(err)
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return fail(fmt.Errorf("sandbox: %w", err))
	}
	mux := http.NewServeMux()
	mux.Handle("/sandbox/", problem.Recover(log, guard.Middleware(http.StripPrefix("/sandbox", api))))
	mux.Handle("/partner/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := problem.NotFound(fmt.Sprintf("this is the sandbox: call %s/… and sign that whole path; /partner/v1/ is production's", SandboxPrefix))
		problem.Write(w, r, p)
	}))
	mux.Handle("/docs/api/", http.StripPrefix("/docs/api", apispec.Handler()))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	limit := opts.MaxHeaderBytes
	if limit <= 0 {
		limit = config.Default().HTTP.MaxHeaderBytes
	}
	// The hub's front: oversized headers and non-canonical paths refused
	// with problem+json, unknown paths and methods answered as problems.
	handler := problem.Front(limit, problem.Unmatched(mux))
	s := &LocalSandbox{Addr: ln.Addr().String(), DBPath: filepath.Join(opts.DataDir, funeral.SandboxDBFile), done: make(chan struct{}),
		srv: &http.Server{Handler: handler, MaxHeaderBytes: 4 * limit, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("sandbox server", "err", err)
		}
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = api.Close(cctx)
		_ = db.Close()
	}()
	return s, nil
}

// Close stops the server and closes the store within ctx's deadline.
func (s *LocalSandbox) Close(ctx context.Context) error {
	_ = s.srv.Shutdown(ctx)
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
