package conformance

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/shanghai-mca/mzhub/security"
	"github.com/shanghai-mca/mzhub/security/access"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/security/sign"
	"github.com/shanghai-mca/mzhub/services/funeral"
	"github.com/shanghai-mca/mzhub/store"
)

// SandboxServer is a throwaway sandbox of the partner API for property-based
// tests (deploy/schemathesis): the API on one address behind the hub's
// security guard (security/access) with a generated test partner, and a
// local proxy that signs every request it forwards with that partner's key,
// so a generic API fuzzer can reach the real, authenticated API.
type SandboxServer struct {
	API       *funeral.API
	APIAddr   string
	ProxyAddr string
	servers   []*http.Server
	done      chan struct{}
}

// StartSandbox starts the sandbox API on apiListen and the signing proxy on
// proxyListen, with its store in a SQLite file at dbPath.
func StartSandbox(ctx context.Context, apiListen, proxyListen, dbPath string, log *slog.Logger) (*SandboxServer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg := store.DefaultConfig()
	cfg.Path = dbPath
	db, err := store.Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	keyID := "sandbox-test-" + keys.NewKID(time.Now())
	secret := keys.Random(32)
	reg, err := funeral.NewRegistry([]funeral.Partner{{ID: "funeral.sandbox-test", Name: "沙箱测试殡仪馆", Role: funeral.RoleFuneralHome,
		Environments: []string{funeral.EnvSandbox}, AllowIPs: []string{"127.0.0.0/8", "::1"}, KeyIDs: []string{keyID}}})
	if err != nil {
		return nil, err
	}
	fc := funeral.DefaultConfig()
	fc.Environment = funeral.EnvSandbox
	fc.RatePerSecond = 0
	api, err := funeral.NewAPI(ctx, fc, funeral.Deps{Store: db, Partners: reg, Logger: log})
	if err != nil {
		return nil, err
	}
	guard, err := sandboxGuard(ctx, db, reg, keyID, secret, true)
	if err != nil {
		return nil, err
	}
	apiLn, err := net.Listen("tcp", apiListen)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	proxyLn, err := net.Listen("tcp", proxyListen)
	if err != nil {
		apiLn.Close()
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	target, _ := url.Parse("http://" + apiLn.Addr().String())
	// The proxy signs a request only when it carries an X-MZ-Signature
	// header (whatever its value), the security scheme of the spec: a
	// fuzzer that drops the header to test authentication gets the hub's
	// real 401.
	signer := &sign.Transport{KeyID: keyID, Secret: secret}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Header.Get(sign.HeaderSignature) == "" {
				return http.DefaultTransport.RoundTrip(r)
			}
			r.Header.Del(sign.HeaderSignature)
			return signer.RoundTrip(r)
		}),
	}
	s := &SandboxServer{API: api, APIAddr: apiLn.Addr().String(), ProxyAddr: proxyLn.Addr().String(), done: make(chan struct{})}
	s.servers = []*http.Server{{Handler: guard.Middleware(api), ReadHeaderTimeout: 5 * time.Second}, {Handler: proxy, ReadHeaderTimeout: 5 * time.Second}}
	lns := []net.Listener{apiLn, proxyLn}
	errc := make(chan error, 2)
	for i := range s.servers {
		go func(i int) { errc <- s.servers[i].Serve(lns[i]) }(i)
	}
	go func() {
		defer close(s.done)
		for range 2 {
			if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("sandbox server", "err", err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = api.Close(ctx)
		_ = db.Close()
	}()
	return s, nil
}

// Close stops both servers and the store within ctx's deadline.
func (s *SandboxServer) Close(ctx context.Context) error {
	for _, srv := range s.servers {
		_ = srv.Shutdown(ctx)
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// sandboxGuard is the guard the hub runs in front of the partner API, for
// the sandbox's one test partner: its secret from memory, nonces in memory,
// every call audited to a chain in the sandbox's own database. For a fuzzer
// (raiseLimits) the rate limits are raised out of its way; otherwise they
// are the hub's defaults.
func sandboxGuard(ctx context.Context, db *store.DB, reg *funeral.Registry, keyID string, secret []byte, raiseLimits bool) (*access.PartnerAuth, error) {
	alog, err := audit.Open(ctx, db, keys.Random(32))
	if err != nil {
		return nil, fmt.Errorf("sandbox: audit: %w", err)
	}
	env := []string{keys.EnvName(keys.PartnerPrefix+keyID) + "=" + hex.EncodeToString(secret)}
	cfg := security.DefaultConfig().PartnerAPI
	cfg.Partners = reg.AccessRules(funeral.EnvSandbox)
	if raiseLimits {
		cfg.PartnerRate, cfg.PartnerBurst = math.MaxInt32, math.MaxInt32
		cfg.IPRate, cfg.IPBurst = math.MaxInt32, math.MaxInt32
	}
	g, err := access.New(access.Options{Config: cfg, Keys: keys.NewEnv(func() []string { return env }),
		Nonces: access.NewMemoryNonces(), Audit: alog})
	if err != nil {
		return nil, fmt.Errorf("sandbox: guard: %w", err)
	}
	return g, nil
}
