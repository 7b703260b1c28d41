package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/bank/banksim"
	"github.com/shanghai-mca/mzhub/connectors/funeralhome/funeralhomesim"
	"github.com/shanghai-mca/mzhub/services/disbursement"
	"github.com/shanghai-mca/mzhub/services/funeral/platformsim"
)

// DemoPersons is the size of the demo's monthly allowance list: big enough
// to show every stage and a few anomalies, small enough to finish in seconds.
const DemoPersons = 3000

// demoFuneral prepares the simulated funeral homes and cemeteries: their
// registry replaces the shipped one (whose partners have no credentials
// yet) so the partner guard knows them.
func demoFuneral(log *slog.Logger) (*funeralhomesim.Demo, error) {
	return funeralhomesim.NewDemo(3, 6, log.With("component", "funeral-sim"))
}

// startBankSims starts the six simulated banks (in-process SFTP servers on
// loopback) and returns their configurations. The demo runs this month's
// cycle today: the banks' schedule day is today, so the upload deadlines
// (18:00) lie ahead; schedule_day stops at the 28th, so from the 29th on
// the calendar shows the uploads late.
func (h *Hub) startBankSims(ctx context.Context) ([]bank.Config, error) {
	cfg := h.Config()
	shipped, err := banksim.ShippedConfigs()
	if err != nil {
		return nil, fmt.Errorf("demo: bank simulators: %w", err)
	}
	var sims []*banksim.Bank
	h.OnClose(func(context.Context) error {
		for _, s := range sims {
			_ = s.Close()
		}
		return nil
	})
	day := min(max(time.Now().In(clock.Shanghai).Day(), 1), 28)
	var cfgs []bank.Config
	for _, c := range shipped {
		opts := banksim.DefaultOptions()
		trouble := demoTrouble[c.Code]
		if trouble.failureRate > 0 {
			opts.FailureRate = trouble.failureRate
		}
		if trouble.returnDelay > 0 {
			opts.ReturnDelay = trouble.returnDelay
		}
		s, err := banksim.Start(ctx, filepath.Join(cfg.DataDir, "banks"), c, os.DirFS(cfg.Paths.Mappings), opts)
		if err != nil {
			return nil, fmt.Errorf("demo: bank simulators: %w", err)
		}
		sims = append(sims, s)
		h.bankSims = append(h.bankSims, s)
		s.Config.ScheduleDay = day
		if trouble.returnDeadline > 0 {
			s.Config.ReturnDeadline = trouble.returnDeadline
		}
		s.ShortNextReturn.Store(trouble.shortReturn)
		if trouble.downFor > 0 {
			s.Config.SFTP.BreakerOpenFor = trouble.downFor / 2 // the circuit tries again soon after the bank is back
			h.AddComponent("demo-outage-"+c.Code, ComponentFunc(func(ctx context.Context) error { return outage(ctx, s, trouble.downFor) }))
		}
		cfgs = append(cfgs, s.Config)
	}
	return cfgs, nil
}

// demoTrouble is the realistic trouble of the demo's month, so that the
// console shows what it is for: a bank returning many failed payments, a
// rejected return file (its trailer does not match its details; the whole
// file follows), a late return file, a bank down for a while.
var demoTrouble = map[string]struct {
	failureRate                 float64
	shortReturn                 bool
	returnDelay, returnDeadline time.Duration
	downFor                     time.Duration
}{
	"ceb":   {failureRate: 0.22},
	"bocom": {shortReturn: true},
	"spdb":  {returnDelay: 12 * time.Second, returnDeadline: 6 * time.Second},
	"cmb":   {downFor: 6 * time.Second, returnDelay: 3 * time.Second},
}

// outage refuses the bank's logins for d once it has taken the month's
// file (the hub's return polls fail, its circuit opens, then closes).
func outage(ctx context.Context, s *banksim.Bank, d time.Duration) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for s.Taken.Load() == 0 {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
	s.Server.Faults.RefuseLogin.Store(true)
	s.Server.DropConnections()
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
	s.Server.Faults.RefuseLogin.Store(false)
	<-ctx.Done()
	return nil
}

// startDemoFlows runs real flows through the hub once it listens: the
// funeral homes push their resources and the cemeteries their burial records
// through the signed partner API, and the month's allowance cycle is asked
// for, given its letter total and confirmed the way the console does it.
func (h *Hub) startDemoFlows(ctx context.Context, fd *funeralhomesim.Demo) error {
	log := h.Logger().With("component", "demo")
	if fd != nil {
		if err := fd.StoreKeys(ctx, h.sec.Keys); err != nil {
			return fmt.Errorf("demo: partner keys: %w", err)
		}
		// The bureau's funeral management platform reads the changes the
		// service relays from its own subscription (configs/routes/topics.yaml).
		platform := platformsim.New(h.bus, log.With("component", "funeral-platform-sim"))
		h.AddComponent("funeral-platform-sim", ComponentFunc(func(ctx context.Context) error {
			err := platform.Run(ctx)
			log.Info("simulated funeral platform stopped", "read", platform.Stats().String())
			return err
		}))
		h.AddComponent("funeral-sim", ComponentFunc(func(ctx context.Context) error {
			actx, cancel := context.WithTimeout(ctx, 10*time.Second)
			addr, err := h.Addr(actx)
			cancel()
			if err != nil {
				return nil
			}
			urls, err := fd.Start(ctx, "http://"+addr, 5*time.Second)
			if err != nil {
				return fmt.Errorf("demo: funeral simulators: %w", err)
			}
			h.setBookingURLs(urls)
			<-ctx.Done()
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return fd.Close(cctx)
		}))
	}
	h.AddComponent("demo-allowance-office", ComponentFunc(func(ctx context.Context) error {
		h.waitDemoDatasea(ctx, log)
		err := driveDemoCycle(ctx, h.disbursement, h.Clock(), log)
		if err != nil && ctx.Err() == nil {
			log.Error("demo allowance cycle stopped", "err", err)
		}
		<-ctx.Done()
		return nil
	}))
	return nil
}

// driveDemoCycle plays the bureau's staff for this month's allowance
// cycle, through the service's requests as the console makes them: the
// allowance office drops the list and asks for the run, the finance office
// enters the official letter's total once the system total is known, and a
// district and a city officer (two accounts) confirm. The hub's cycle
// runner does the rest: files to the six banks, returns, reconciliation.
func driveDemoCycle(ctx context.Context, svc *disbursement.Service, clk clock.Clock, log *slog.Logger) error {
	period := clk.Now().In(clock.Shanghai).Format("2006-01")
	if err := os.MkdirAll(svc.InboxDir(), 0o700); err != nil {
		return err
	}
	list := filepath.Join(svc.InboxDir(), "demo-list-"+period+".csv")
	f, err := os.OpenFile(list, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = disbursement.WriteList(f, disbursement.GenerateOptions{Persons: DemoPersons, Seed: 1, Period: period, Anomalies: true})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write demo list: %w", err)
	}
	_, err = svc.Submit(ctx, disbursement.Request{Period: period, ListFile: list, Actor: "demo:allowance-office"})
	if err != nil && !errors.Is(err, disbursement.ErrBatchDone) && !errors.Is(err, disbursement.ErrListTaken) {
		return err
	}
	if err := os.Remove(list); err != nil {
		log.Warn("demo: remove the list from the inbox", "err", err)
	}
	for {
		changed := svc.Changed() // taken before the read: no change is missed
		b, err := svc.Batch(ctx, bank.Disbursement, period)
		if err != nil {
			return err
		}
		switch b.Status {
		case disbursement.BatchAwaitingLetter:
			log.Info("demo: the finance office enters the letter total", "period", period, "records", b.Records, "valid", b.Valid, "system_total_fen", b.SystemTotal)
			if _, err := svc.Submit(ctx, disbursement.Request{Period: period, LetterTotal: b.SystemTotal, Actor: "demo:finance-office"}); err != nil {
				return err
			}
		case disbursement.BatchAwaiting:
			log.Info("demo: district and city officers confirm", "period", period)
			if err := svc.Confirm(ctx, bank.Disbursement, period, "district", "demo.district-officer"); err != nil {
				return err
			}
			if err := svc.Confirm(ctx, bank.Disbursement, period, "city", "demo.city-officer"); err != nil {
				return err
			}
		case disbursement.BatchDone:
			log.Info("demo allowance cycle finished", "period", period, "stage", b.Stage, "status", b.Status)
			return nil
		case disbursement.BatchFailed:
			return fmt.Errorf("batch %s failed at %s: %s", b.Name, b.Stage, b.Error)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// DemoBookingURLs returns the demo's simulated funeral homes' booking API
// base URLs by partner id (nil until the simulators listen), for the demo
// banner; the hub signs its calls to home NN with key id demo-hub-fhNN.
func (h *Hub) DemoBookingURLs() map[string]string {
	h.bookingMu.Lock()
	defer h.bookingMu.Unlock()
	out := make(map[string]string, len(h.bookingURLs))
	for k, v := range h.bookingURLs {
		out[k] = v
	}
	return out
}
