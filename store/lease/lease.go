package lease

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// NodeClaim names the lease that gives a node name to one live replica
// (the hub claims its own at start): job leases are held by node name, so
// two live replicas with one name would both believe they hold every job.
func NodeClaim(node string) string { return "node/" + node }

// DefaultTTL is how long a lease lasts without renewal.
const DefaultTTL = 15 * time.Second

// Options configure an Elector.
type Options struct {
	// Node names this node (the hub's node id); required.
	Node string
	// TTL is how long a lease lasts without renewal (default DefaultTTL).
	TTL time.Duration
	// Clock tells the time (default the wall clock).
	Clock clock.Clock
	// Logger receives lease changes (default discarded).
	Logger *slog.Logger
	// Registerer receives mzhub_lease_held and mzhub_lease_members (nil: not registered).
	Registerer prometheus.Registerer
}

// Elector takes, renews and gives up named leases for one node. It is safe
// for concurrent use.
type Elector struct {
	db      *store.DB
	node    string
	ttl     time.Duration
	clock   clock.Clock
	log     *slog.Logger
	held    *prometheus.GaugeVec
	members *prometheus.GaugeVec
}

// New migrates the lease table and returns an Elector for o.Node.
func New(ctx context.Context, db *store.DB, o Options) (*Elector, error) {
	if o.Node == "" {
		return nil, errors.New("lease: node required")
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	sub, _ := fs.Sub(migrations, "migrations")
	if err := db.Migrate(ctx, "lease", sub); err != nil {
		return nil, err
	}
	e := &Elector{db: db, node: o.Node, ttl: o.TTL, clock: o.Clock, log: o.Logger,
		held: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mzhub_lease_held",
			Help: "1 while this replica holds the lease and runs its job (the sum over replicas is 1 for each job lease)."}, []string{"lease"}),
		members: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mzhub_lease_members",
			Help: "Live members of a group as this replica last counted them (group replica: the hub's replicas)."}, []string{"group"}),
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{e.held, e.members} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("lease: metrics: %w", err)
			}
		}
	}
	return e, nil
}

// TryAcquire takes lease name, or renews it when this node holds it, until
// now + TTL. It reports whether this node holds it afterwards.
func (e *Elector) TryAcquire(ctx context.Context, name string) (bool, error) {
	// A control write: ahead of the data writes queued in this process
	// (store.DB.Control), so a saturated data path never starves it.
	var n int64
	err := e.db.Control(ctx, func(ctx context.Context) error {
		now := e.clock.Now()
		res, err := e.db.ExecContext(ctx, e.db.Rebind(`INSERT INTO leases (name, holder, expires_ms) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_ms = excluded.expires_ms
		WHERE leases.holder = excluded.holder OR leases.expires_ms < ?`),
			name, e.node, now.Add(e.ttl).UnixMilli(), now.UnixMilli())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("lease %s: acquire: %w", name, err)
	}
	return n == 1, nil
}

// Release gives lease name up when this node holds it, so that another
// node takes it at its next try instead of after the TTL.
func (e *Elector) Release(ctx context.Context, name string) error {
	err := e.db.Control(ctx, func(ctx context.Context) error {
		_, err := e.db.ExecContext(ctx, e.db.Rebind(`DELETE FROM leases WHERE name = ? AND holder = ?`), name, e.node)
		return err
	})
	if err != nil {
		return fmt.Errorf("lease %s: release: %w", name, err)
	}
	return nil
}

// Holder returns who holds lease name and until when; "" when nobody does.
func (e *Elector) Holder(ctx context.Context, name string) (string, time.Time, error) {
	var holder string
	var ms int64
	err := e.db.QueryRowContext(ctx, e.db.Rebind(`SELECT holder, expires_ms FROM leases WHERE name = ?`), name).Scan(&holder, &ms)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", time.Time{}, nil
	case err != nil:
		return "", time.Time{}, fmt.Errorf("lease %s: holder: %w", name, err)
	}
	if !time.UnixMilli(ms).After(e.clock.Now()) {
		return "", time.Time{}, nil
	}
	return holder, time.UnixMilli(ms), nil
}

// Run runs f whenever this node holds lease name, until ctx is done. It
// tries to take the lease every third of the TTL and renews it as often
// while f runs. f's context is cancelled when a renewal fails or another
// node has the lease, and Run waits for f to return before it tries again;
// f should return when its context is done. When f returns by itself, the
// lease is given up and taken again at the next try (f runs again). When
// ctx is done, f is stopped and the lease released. Run returns nil.
func (e *Elector) Run(ctx context.Context, name string, f func(context.Context) error) error {
	every := e.ttl / 3
	log := e.log.With("lease", name, "node", e.node)
	for {
		held, err := e.TryAcquire(ctx, name)
		if err != nil && ctx.Err() == nil {
			log.Warn("lease: acquire", "err", err)
		}
		if held {
			log.Info("lease taken")
			e.held.WithLabelValues(name).Set(1)
			e.hold(ctx, name, every, f, log)
			e.held.WithLabelValues(name).Set(0)
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := e.Release(rctx, name); err != nil {
				log.Warn("lease: release", "err", err)
			}
			cancel()
			log.Info("lease given up")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-e.clock.After(every):
		}
	}
}

// TryRun runs f once if this node can take lease name now, renewing the
// lease while f runs and giving it up afterwards. ran is false (and f not
// called) when another node holds the lease; err is f's error, or the
// failure to take the lease. f's context is cancelled if the lease is lost.
func (e *Elector) TryRun(ctx context.Context, name string, f func(context.Context) error) (ran bool, err error) {
	held, err := e.TryAcquire(ctx, name)
	if err != nil || !held {
		return false, err
	}
	log := e.log.With("lease", name, "node", e.node)
	e.held.WithLabelValues(name).Set(1)
	var ferr error
	e.hold(ctx, name, e.ttl/3, func(ctx context.Context) error { ferr = f(ctx); return ferr }, log)
	e.held.WithLabelValues(name).Set(0)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if rerr := e.Release(rctx, name); rerr != nil {
		log.Warn("lease: release", "err", rerr)
	}
	return true, ferr
}

// hold runs f and renews the lease until ctx is done, f returns, or the
// lease cannot be renewed.
func (e *Elector) hold(ctx context.Context, name string, every time.Duration, f func(context.Context) error, log *slog.Logger) {
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- f(fctx) }()
	for {
		select {
		case err := <-done:
			if err != nil && ctx.Err() == nil {
				log.Warn("lease: job stopped", "err", err)
			}
			return
		case <-ctx.Done():
			<-done
			return
		case <-e.clock.After(every):
		}
		held, err := e.TryAcquire(ctx, name)
		if err != nil || !held {
			if ctx.Err() == nil {
				log.Warn("lease lost; stopping the job", "err", err)
			}
			stop()
			<-done
			return
		}
	}
}

// Count returns how many leases whose name starts with prefix are held
// (not expired) now.
func (e *Elector) Count(ctx context.Context, prefix string) (int, error) {
	var n int
	err := e.db.QueryRowContext(ctx, e.db.Rebind(`SELECT count(*) FROM leases WHERE substr(name, 1, ?) = ? AND expires_ms > ?`),
		len(prefix), prefix, e.clock.Now().UnixMilli()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("lease: count %s: %w", prefix, err)
	}
	return n, nil
}

// Member keeps this node in group (a lease named group + "/" + node) until
// ctx is done and tells count the group's live members now and every third
// of the TTL after (a failed count is skipped). The hub shares its rate
// limits between the members of "replica".
func (e *Elector) Member(ctx context.Context, group string, count func(int)) error {
	return e.Run(ctx, group+"/"+e.node, func(ctx context.Context) error {
		for {
			if n, err := e.Count(ctx, group+"/"); err == nil {
				e.members.WithLabelValues(group).Set(float64(n))
				count(n)
			} else if ctx.Err() == nil {
				e.log.Warn("lease: count members", "group", group, "err", err)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-e.clock.After(e.ttl / 3):
			}
		}
	})
}
