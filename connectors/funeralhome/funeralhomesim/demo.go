package funeralhomesim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/security/sign"
	"github.com/shanghai-mca/mzhub/services/funeral"
)

// Demo is a set of simulated partners for `mzhub demo`: funeral homes
// (booking API + pushes) and cemeteries/columbaria (burial pushes), with
// their own registry and generated keys, so the hub can serve them without
// touching the real registry.
type Demo struct {
	homes, cemeteries int
	secrets           map[string][]byte
	reg               *funeral.Registry
	log               *slog.Logger
	mu                sync.Mutex
	running           []*Home
	cancel            context.CancelFunc
	wg                sync.WaitGroup
	first             chan struct{} // closed once the first round was pushed
}

// NewDemo prepares homes funeral homes (≤ 15) and cemeteries cemeteries
// (the last third of them columbaria) with fresh keys.
func NewDemo(homes, cemeteries int, log *slog.Logger) (*Demo, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Demo{homes: homes, cemeteries: cemeteries, secrets: map[string][]byte{}, log: log, first: make(chan struct{})}
	var ps []funeral.Partner
	for i := 1; i <= homes; i++ {
		id := fmt.Sprintf("funeral.fh%02d", i)
		d.secrets[fmt.Sprintf("demo-fh%02d", i)] = keys.Random(32)
		d.secrets[fmt.Sprintf("demo-hub-fh%02d", i)] = keys.Random(32)
		ps = append(ps, funeral.Partner{ID: id, Name: fmt.Sprintf("上海市模拟殡仪馆%02d", i), Role: funeral.RoleFuneralHome,
			Environments: []string{funeral.EnvSandbox, funeral.EnvProduction}, AllowIPs: []string{"127.0.0.0/8", "::1"},
			KeyIDs: []string{fmt.Sprintf("demo-fh%02d", i)}, BookingKeyID: fmt.Sprintf("demo-hub-fh%02d", i)})
	}
	for i := 1; i <= cemeteries; i++ {
		role, prefix := funeral.RoleCemetery, "cemetery.cm"
		if i > cemeteries*2/3 {
			role, prefix = funeral.RoleColumbarium, "columbarium.cb"
		}
		d.secrets[fmt.Sprintf("demo-cm%02d", i)] = keys.Random(32)
		ps = append(ps, funeral.Partner{ID: fmt.Sprintf("%s%02d", prefix, i), Name: fmt.Sprintf("模拟安葬机构%02d", i), Role: role,
			Environments: []string{funeral.EnvSandbox, funeral.EnvProduction}, AllowIPs: []string{"127.0.0.0/8", "::1"},
			KeyIDs: []string{fmt.Sprintf("demo-cm%02d", i)}})
	}
	reg, err := funeral.NewRegistry(ps)
	if err != nil {
		return nil, err
	}
	d.reg = reg
	return d, nil
}

// Registry is the demo partners' registry (funeral.Deps.Partners).
func (d *Demo) Registry() *funeral.Registry { return d.reg }

// Secret returns a demo key's secret (funeral.Deps.Secret); it also holds
// the keys the hub signs booking calls with (demo-hub-fhNN).
func (d *Demo) Secret(_ context.Context, keyID string) ([]byte, error) {
	s, ok := d.secrets[keyID]
	if !ok {
		return nil, sign.ErrUnknownKey
	}
	return s, nil
}

// StoreKeys writes the demo secrets to a key provider as partner/<key id>,
// for a hub that guards the API with security/access.
func (d *Demo) StoreKeys(ctx context.Context, kp keys.Provider) error {
	var errs []error
	for id, s := range d.secrets {
		if _, err := kp.Get(ctx, keys.PartnerPrefix+id); err == nil {
			continue
		}
		errs = append(errs, kp.Put(ctx, keys.PartnerPrefix+id, s))
	}
	return errors.Join(errs...)
}

// Start starts the simulated homes (their booking APIs listen on
// 127.0.0.1) pushing to hubURL every interval, and pushes the cemeteries'
// burial records once. It returns the homes' booking base URLs by partner id.
func (d *Demo) Start(ctx context.Context, hubURL string, interval time.Duration) (map[string]string, error) {
	ctx, cancel := context.WithCancel(ctx)
	d.cancel = cancel
	urls := map[string]string{}
	for i := 1; i <= d.homes; i++ {
		h, err := Start(ctx, Config{Index: i, HubURL: hubURL, Interval: interval, Logger: d.log,
			Push:    Credentials{KeyID: fmt.Sprintf("demo-fh%02d", i), Secret: d.secrets[fmt.Sprintf("demo-fh%02d", i)]},
			Booking: Credentials{KeyID: fmt.Sprintf("demo-hub-fh%02d", i), Secret: d.secrets[fmt.Sprintf("demo-hub-fh%02d", i)]}})
		if err != nil {
			_ = d.Close(context.Background())
			return nil, err
		}
		d.mu.Lock()
		d.running = append(d.running, h)
		d.mu.Unlock()
		urls[fmt.Sprintf("funeral.fh%02d", i)] = h.URL()
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		failed := 0
		for i := 1; i <= d.cemeteries; i++ {
			p := NewPusher(hubURL, Credentials{KeyID: fmt.Sprintf("demo-cm%02d", i), Secret: d.secrets[fmt.Sprintf("demo-cm%02d", i)]})
			if err := PushCemetery(ctx, p, i, i > d.cemeteries*2/3, 5, time.Now()); err != nil && ctx.Err() == nil {
				failed++
				d.log.Warn("funeral demo: cemetery push", "index", i, "err", err)
			}
		}
		d.mu.Lock()
		homes := d.running
		d.mu.Unlock()
		pushed, refused := 0, 0
		for _, h := range homes {
			select {
			case <-h.Pushed():
			case <-ctx.Done():
				return
			}
			p, f := h.Stats()
			pushed, refused = pushed+p, refused+f
		}
		d.log.Info("funeral demo: first round pushed", "homes", len(homes), "home_records", pushed, "home_records_refused", refused,
			"cemeteries", d.cemeteries, "cemeteries_failed", failed)
		close(d.first)
	}()
	return urls, nil
}

// FirstRound returns a channel closed once every home's first full push and
// every cemetery's burial push have returned (logged as "funeral demo: first
// round pushed"): a test waits on it instead of giving the simulators time.
func (d *Demo) FirstRound() <-chan struct{} { return d.first }

// Close stops every simulated partner within ctx's deadline.
func (d *Demo) Close(ctx context.Context) error {
	if d.cancel != nil {
		d.cancel()
	}
	d.mu.Lock()
	homes := d.running
	d.running = nil
	d.mu.Unlock()
	var errs []error
	for _, h := range homes {
		errs = append(errs, h.Close(ctx))
	}
	d.wg.Wait()
	return errors.Join(errs...)
}
