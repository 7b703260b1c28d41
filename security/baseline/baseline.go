// Package baseline opens the whole security baseline for the hub in one
// call: key provider (with first-run key generation), audit log, field
// encryption ring, SM2 file signer, partner API guard and console accounts,
// plus a retention component that prunes the audit log and stale sessions.
// The hub's wiring calls Open once and mounts what it returns.
package baseline

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/security"
	"github.com/shanghai-mca/mzhub/security/access"
	"github.com/shanghai-mca/mzhub/security/accounts"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/fieldcrypt"
	"github.com/shanghai-mca/mzhub/security/filesign"
	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/store"
)

// Options are what Open needs.
type Options struct {
	// Config is the root config's security section.
	Config security.Config
	// DB is the state store; the audit, partner_access and accounts
	// migrations are applied to it.
	DB *store.DB
	// Logger, Registerer and Clock are the hub's; nil gives a discard
	// logger, no metrics and the wall clock.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Clock      clock.Clock
	// ExtraPartners are partner access rules kept elsewhere (for example
	// services/funeral's registry, Registry.AccessRules), added to
	// Config.PartnerAPI.Partners.
	ExtraPartners []security.PartnerAccess
	// LoginPath makes the console middleware redirect browsers without a
	// session there (empty: answer 401).
	LoginPath string
	// Provider replaces the configured key provider (tests, a cipher machine).
	Provider keys.Provider
	// DataDir is the hub's data directory: Open warns when the audit key
	// is kept inside it.
	DataDir string
}

// AuditKey returns the audit chain's key: from security.audit_key_file
// when set (hex, mode 0400/0600), else the key provider's "audit" key.
func AuditKey(ctx context.Context, cfg security.Config, kp keys.Provider) ([]byte, error) {
	if cfg.AuditKeyFile == "" {
		return kp.Get(ctx, keys.AuditName)
	}
	st, err := os.Stat(cfg.AuditKeyFile)
	if err != nil {
		return nil, fmt.Errorf("audit key file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("audit key file %s: mode %o, want 0400 or 0600 (readable by the hub's user only)", cfg.AuditKeyFile, st.Mode().Perm())
	}
	b, err := os.ReadFile(cfg.AuditKeyFile)
	if err != nil {
		return nil, fmt.Errorf("audit key file: %w", err)
	}
	k, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(k) < 16 {
		return nil, fmt.Errorf("audit key file %s: want at least 32 hex characters", cfg.AuditKeyFile)
	}
	return k, nil
}

// within reports whether path lies inside dir.
func within(path, dir string) bool {
	p, err1 := filepath.Abs(path)
	d, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(d, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// UnauthenticatedPerMinute is how many audit records one source address
// may cause per action and outcome each minute before it has
// authenticated; the rest are counted into one record per minute.
const UnauthenticatedPerMinute = 10

// Baseline holds the opened security components.
type Baseline struct {
	// Keys is the key provider.
	Keys keys.Provider
	// Audit is the audit chain; hand it to every component that audits.
	Audit *audit.Log
	// Fields encrypts sensitive columns and computes blind indexes.
	Fields *fieldcrypt.Ring
	// FileSigner signs outbound batch files (SM2).
	FileSigner *filesign.Signer
	// Partners guards the partner API: mount Partners.Middleware(handler)
	// under /partner/.
	Partners *access.PartnerAuth
	// Commits writes the partner guard's nonces and audit records with
	// group commit; the hub closes it (Close) after the listener stopped.
	Commits *access.GroupCommit
	// Unauthenticated aggregates the audit records of callers who have not
	// authenticated (refused partner calls, failed logins); run it on every
	// replica (Throttle.Run).
	Unauthenticated *audit.Throttle
	// Accounts is the console's identity: mount Accounts.Handler() under
	// /console/auth/ and wrap console handlers with Accounts.Middleware and
	// Accounts.RequireRole.
	Accounts *accounts.Manager

	cfg   security.Config
	log   *slog.Logger
	clock clock.Clock
}

// Open creates missing keys (when Config.GenerateKeys is on and the
// provider can store them), migrates the security schemas and builds every
// component. A missing key with GenerateKeys off is an error naming it.
func Open(ctx context.Context, o Options) (*Baseline, error) {
	if err := o.Config.Validate(); err != nil {
		return nil, err
	}
	b := &Baseline{cfg: o.Config, log: o.Logger, clock: o.Clock}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	if b.clock == nil {
		b.clock = clock.Real{}
	}
	kp := o.Provider
	if kp == nil {
		var err error
		if kp, err = keys.New(o.Config.KeyProvider, o.Config.KeyDir); err != nil {
			return nil, err
		}
	}
	b.Keys = kp
	if o.Config.GenerateKeys {
		created, err := keys.Init(ctx, kp, b.clock.Now())
		if err != nil && !errors.Is(err, keys.ErrReadOnly) {
			return nil, fmt.Errorf("security: create keys: %w", err)
		}
		for _, n := range created {
			b.log.Warn("generated a missing key (demo or first run); back up the key directory", "key", n, "key_dir", o.Config.KeyDir)
		}
	}
	auditKey, err := AuditKey(ctx, o.Config, kp)
	if err != nil {
		return nil, fmt.Errorf("security: %w", err)
	}
	if o.Config.KeyProvider == "file" && o.Config.AuditKeyFile == "" && o.DataDir != "" && within(o.Config.KeyDir, o.DataDir) {
		b.log.Warn("the audit key is kept in the data directory beside the audit log it protects; set security.audit_key_file (or key_dir) to another path, or use the env provider",
			"key_dir", o.Config.KeyDir, "data_dir", o.DataDir)
	}
	if b.Audit, err = audit.Open(ctx, o.DB, auditKey, audit.WithClock(b.clock)); err != nil {
		return nil, err
	}
	if b.Fields, err = fieldcrypt.LoadRing(ctx, kp); err != nil {
		return nil, fmt.Errorf("security: %w", err)
	}
	sk, err := keys.SM2(ctx, kp, keys.SM2SignName)
	if err != nil {
		return nil, fmt.Errorf("security: %w", err)
	}
	b.FileSigner = filesign.NewSigner(sk, nil)
	b.Unauthenticated = audit.NewThrottle(b.Audit, UnauthenticatedPerMinute, time.Minute, b.clock)
	// Nonces and audit records of partner calls share group-commit
	// transactions (one write lock for many calls).
	if b.Commits, err = access.NewGroupCommit(ctx, o.DB, b.Audit, access.GroupCommitOptions{
		Clock: b.clock, Logger: b.log.With("component", "partner_commit"), Registerer: o.Registerer,
	}); err != nil {
		return nil, err
	}
	pcfg := o.Config.PartnerAPI
	pcfg.Partners = append(append([]security.PartnerAccess(nil), pcfg.Partners...), o.ExtraPartners...)
	if b.Partners, err = access.New(access.Options{
		Config: pcfg, Keys: kp, Nonces: b.Commits, Audit: b.Commits, Unauthenticated: b.Unauthenticated,
		Logger: b.log.With("component", "partner_access"), Registerer: o.Registerer, Clock: b.clock,
	}); err != nil {
		return nil, err
	}
	opts := []accounts.Option{accounts.WithClock(b.clock), accounts.WithLogger(b.log.With("component", "accounts")),
		accounts.WithUnauthenticatedAudit(b.Unauthenticated), accounts.WithSealer(b.Fields)}
	if o.Registerer != nil {
		opts = append(opts, accounts.WithRegisterer(o.Registerer))
	}
	if o.LoginPath != "" {
		opts = append(opts, accounts.WithLoginPath(o.LoginPath))
	}
	if b.Accounts, err = accounts.New(ctx, o.DB, o.Config.Console, b.Audit, opts...); err != nil {
		return nil, err
	}
	return b, nil
}

// Run prunes stale console sessions every hour and, once a day, audit
// records older than the retention, and logs the audit chain's head as an
// anchor; it returns when ctx is done. It is a hub component.
func (b *Baseline) Run(ctx context.Context) error {
	lastAudit := time.Time{}
	for {
		if _, err := b.Accounts.PruneSessions(ctx); err != nil && ctx.Err() == nil {
			b.log.Error("prune console sessions", "err", err)
		}
		if now := b.clock.Now(); now.Sub(lastAudit) >= 24*time.Hour {
			n, err := b.Audit.Prune(ctx, now.Add(-b.cfg.Audit.Retention), b.cfg.Audit.Retention)
			switch {
			case err != nil && ctx.Err() == nil:
				b.log.Error("prune audit log", "err", err)
			case n > 0:
				b.log.Info("pruned audit records past retention", "records", n, "retention", b.cfg.Audit.Retention)
			}
			// Ship the head to the log (and from there off the host) once a
			// day: `mzhub audit verify --anchor` later proves no rollback.
			if a, err := b.Audit.Head(ctx); err == nil {
				b.log.Info("audit chain head", "anchor", a.String())
			}
			lastAudit = now
		}
		select {
		case <-ctx.Done():
			return nil
		case <-b.clock.After(time.Hour):
		}
	}
}
