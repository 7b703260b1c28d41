package hub

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/store/lease"
)

// replicaConfig is a configuration for replicas sharing one SQLite state
// database in dir, with the shortest lease TTL.
func replicaConfig(t *testing.T, dir, node string) config.Config {
	t.Helper()
	cfg, _, err := DemoConfig(dir, "127.0.0.1:0", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Node = node
	cfg.Replica.LeaseTTL = time.Second
	cfg.Store.Path = filepath.Join(dir, "shared.db")
	return cfg
}

func newReplica(t *testing.T, cfg config.Config) *Hub {
	t.Helper()
	h, err := New(context.Background(), cfg, NewLogger(io.Discard, "warn", "text"))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestNodeClaimRefusesSecondReplica: two replicas started with the same node
// name (the same host name) on one state database: the second is refused
// with ErrNodeInUse instead of sharing every job lease with the first; once
// the first closes, the name is free at once.
func TestNodeClaimRefusesSecondReplica(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	first := newReplica(t, replicaConfig(t, dir, "same-host"))
	if err := first.claimNode(ctx); err != nil {
		t.Fatalf("first replica: %v", err)
	}
	second := newReplica(t, replicaConfig(t, dir, "same-host"))
	err := second.claimNode(ctx)
	if !errors.Is(err, ErrNodeInUse) {
		t.Fatalf("second replica with the same node: got %v, want ErrNodeInUse", err)
	}
	_ = second.Close(ctx)
	other := newReplica(t, replicaConfig(t, dir, "other-host"))
	if err := other.claimNode(ctx); err != nil {
		t.Fatalf("a replica with another node name: %v", err)
	}
	if err := first.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Closing released the claim: a restart does not wait for the TTL.
	again := newReplica(t, replicaConfig(t, dir, "same-host"))
	cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := again.claimNode(cctx); err != nil {
		t.Fatalf("restart after a clean stop: %v", err)
	}
	_ = again.Close(ctx)
	_ = other.Close(ctx)
}

// TestNodeClaimLostStopsTheHub: when another process takes the node claim
// (this replica stalled beyond the TTL), the replica reports it as fatal
// instead of going on with a name it no longer owns.
func TestNodeClaimLostStopsTheHub(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	h := newReplica(t, replicaConfig(t, dir, "stalled"))
	defer h.Close(ctx)
	if err := h.claimNode(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Store().ExecContext(ctx, h.Store().Rebind(`UPDATE leases SET holder = ?, expires_ms = ? WHERE name = ?`),
		"claim-someone-else", time.Now().Add(time.Hour).UnixMilli(), lease.NodeClaim("stalled")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-h.fatal:
		if !errors.Is(err, errNodeClaimLost) {
			t.Fatalf("got %v, want errNodeClaimLost", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the lost claim was not reported")
	}
}

// TestCLIDoesNotShareTheReplicaLeases: a CLI cycle command on the host of a
// serving replica takes an identity of its own, so it cannot renew the
// replica's job lease and run the same cycle at once (before, both used
// the host name and both "held" the lease).
func TestCLIDoesNotShareTheReplicaLeases(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	cfg := replicaConfig(t, dir, "host-a")
	// The test holds the lease without renewing it: a TTL longer than the
	// CLI's start on a loaded machine (a 1 s lease expired while BuildCycles
	// ran at load 30, and the CLI then rightly took it).
	cfg.Replica.LeaseTTL = time.Minute
	// The serving replica, as wireCore sets it up: its node claimed, its
	// job leases held under its node name.
	serving := newReplica(t, cfg)
	defer serving.Close(ctx)
	if err := serving.claimNode(ctx); err != nil {
		t.Fatal(err)
	}
	leases, err := lease.New(ctx, serving.Store(), lease.Options{Node: serving.Node(), TTL: cfg.Replica.LeaseTTL})
	if err != nil {
		t.Fatal(err)
	}
	if held, err := leases.TryAcquire(ctx, CycleLease); err != nil || !held {
		t.Fatalf("serving replica takes %s: held=%v err=%v", CycleLease, held, err)
	}
	cli, err := BuildCycles(ctx, cfg, NewLogger(io.Discard, "warn", "text"), CycleOptions{Demo: true})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close(ctx)
	if cli.Node() == "host-a" {
		t.Fatalf("the CLI runs as the replica's node %q", cli.Node())
	}
	ran, err := cli.Leases().TryRun(ctx, CycleLease, func(context.Context) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if ran {
		t.Fatal("the CLI ran the cycle while the serving replica held its lease")
	}
}
