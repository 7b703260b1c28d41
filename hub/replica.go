package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/shanghai-mca/mzhub/store/lease"
)

// ErrNodeInUse means another live replica holds this replica's node name.
var ErrNodeInUse = errors.New("node name in use by another live replica")

// errNodeClaimLost means this replica could not renew the claim of its
// node name in time; another replica may hold it now.
var errNodeClaimLost = errors.New("node name claim lost")

// randomToken returns 16 hex digits from the system's random source.
func randomToken() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// cliNode returns the identity of a CLI process on this node: unique per
// process, so that a command run beside `mzhub serve` on the same host never
// shares its leases (it would otherwise renew the serving replica's job
// leases and run the same job at once).
func cliNode(node string) string {
	return fmt.Sprintf("%s/cli-%d-%s", node, os.Getpid(), randomToken()[:6])
}

// claimNode takes this replica's node name in the state database before
// any job lease is taken, waiting up to one lease TTL (and a third) for a
// replica that died to lose its claim, and keeps the claim renewed until
// Close releases it. When another live replica holds the name, it returns
// ErrNodeInUse naming the holder. When a renewal fails for longer than the
// TTL, the hub stops (Run returns the error): it can no longer be sure it
// is alone with its name, and a supervisor restarts it.
func (h *Hub) claimNode(ctx context.Context) error {
	ttl := h.cfg.Replica.LeaseTTL
	token := "claim-" + randomToken()
	claimer, err := lease.New(ctx, h.Store(), lease.Options{Node: token, TTL: ttl, Clock: h.Clock()})
	if err != nil {
		return fmt.Errorf("node claim: %w", err)
	}
	name := lease.NodeClaim(h.node)
	deadline := h.Clock().Now().Add(ttl + ttl/3)
	for {
		held, err := claimer.TryAcquire(ctx, name)
		if err != nil {
			return fmt.Errorf("node claim %q: %w", h.node, err)
		}
		if held {
			break
		}
		if !h.Clock().Now().Before(deadline) {
			holder, until, _ := claimer.Holder(ctx, name)
			return fmt.Errorf("%w: %q is claimed by %s until %s; give each replica a unique node (config key node, or MZHUB_NODE)",
				ErrNodeInUse, h.node, holder, until.UTC().Format(time.RFC3339))
		}
		h.log.Warn("node name claimed by another replica; waiting for its claim to expire", "node", h.node, "wait_until", deadline.UTC().Format(time.RFC3339))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-h.Clock().After(ttl / 6):
		}
	}
	h.log.Info("node name claimed", "node", h.node, "lease_ttl", ttl.String())
	rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.renewNodeClaim(rctx, claimer, name, ttl)
	}()
	h.OnClose(func(ctx context.Context) error {
		stop()
		<-done
		return claimer.Release(ctx, name)
	})
	return nil
}

// renewNodeClaim renews the node claim every third of ttl until ctx is
// done; when it was not renewed for a whole ttl, or another replica took
// it, it reports errNodeClaimLost to Run.
func (h *Hub) renewNodeClaim(ctx context.Context, claimer *lease.Elector, name string, ttl time.Duration) {
	renewed := h.Clock().Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.Clock().After(ttl / 3):
		}
		held, err := claimer.TryAcquire(ctx, name)
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && held:
			renewed = h.Clock().Now()
			continue
		case err == nil:
			h.fail(fmt.Errorf("%w: %q was taken by another replica", errNodeClaimLost, h.node))
			return
		}
		if h.Clock().Now().Sub(renewed) >= ttl {
			h.fail(fmt.Errorf("%w: %q not renewed for %s: %v", errNodeClaimLost, h.node, ttl, err))
			return
		}
		h.log.Warn("node claim: renewal failed; retrying", "node", h.node, "err", err)
	}
}

// fail makes Run stop with err (the first one wins).
func (h *Hub) fail(err error) {
	h.log.Error("hub failing", "err", err)
	select {
	case h.fatal <- err:
	default:
	}
}
