package funeral

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/security"
)

// PartnerSync keeps one replica's view of the partners in step with the
// partner state store: it polls the state's version every interval and,
// when it moved, loads the state, replaces the Registry's partners and
// hands the access rules and held secrets to Apply (the partner guard's
// SetPartners). Every replica runs one (not a singleton job).
type PartnerSync struct {
	store *PartnerStore
	reg   *Registry
	apply func(rules []security.PartnerAccess, held map[string][]byte) error
	every time.Duration
	clock clock.Clock
	log   *slog.Logger

	mu      sync.Mutex
	applied int64
	moved   chan struct{} // closed and replaced at every applied version
}

// NewPartnerSync returns a sync of reg (and of apply) with st, polling
// every interval on clk. log may be nil.
func NewPartnerSync(st *PartnerStore, reg *Registry, apply func([]security.PartnerAccess, map[string][]byte) error,
	every time.Duration, clk clock.Clock, log *slog.Logger) *PartnerSync {
	if clk == nil {
		clk = clock.Real{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &PartnerSync{store: st, reg: reg, apply: apply, every: every, clock: clk, log: log, applied: -1, moved: make(chan struct{})}
}

// Sync applies the store's state now if its version moved since the last
// applied one.
func (s *PartnerSync) Sync(ctx context.Context) error {
	v, err := s.store.Version(ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	same := v == s.applied
	s.mu.Unlock()
	if same {
		return nil
	}
	st, err := s.store.Load(ctx)
	if err != nil {
		return err
	}
	if err := s.reg.Replace(st.Partners); err != nil {
		// Keep serving the valid partners; say which are left out.
		s.log.Error("partner state has invalid partners; they are not served", "err", err)
	}
	var rules []security.PartnerAccess
	pending := 0
	// One guard fronts production and the sandbox: both environments' rules.
	for _, r := range s.reg.AccessRules(EnvProduction, EnvSandbox) {
		if len(r.KeyIDs) == 0 && len(r.MTLSSubjects) == 0 {
			pending++ // no credentials issued yet: cannot call
			continue
		}
		rules = append(rules, r)
	}
	if s.apply != nil {
		if err := s.apply(rules, st.Secrets); err != nil {
			return fmt.Errorf("funeral: apply partner state %d: %w", st.Version, err)
		}
	}
	s.mu.Lock()
	first := s.applied < 0
	s.applied = st.Version
	close(s.moved)
	s.moved = make(chan struct{})
	s.mu.Unlock()
	level := slog.LevelInfo
	if first {
		level = slog.LevelDebug
	}
	s.log.Log(ctx, level, "funeral partner state applied", "version", st.Version, "with_credentials", len(rules), "awaiting_credentials", pending)
	return nil
}

// Applied returns the version last applied (-1 before the first Sync).
func (s *PartnerSync) Applied() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied
}

// WaitApplied returns once a version at least v is applied, or ctx's error.
func (s *PartnerSync) WaitApplied(ctx context.Context, v int64) error {
	for {
		s.mu.Lock()
		ok, ch := s.applied >= v, s.moved
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Run syncs every interval until ctx is done. A failed poll is logged and
// retried at the next tick (the replica keeps its last applied state).
func (s *PartnerSync) Run(ctx context.Context) error {
	for {
		if err := s.Sync(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("funeral partner state: reload failed; serving the last applied state", "applied", s.Applied(), "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.clock.After(s.every):
		}
	}
}
