package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/bank/banksim"
	"github.com/shanghai-mca/mzhub/connectors/funeralhome/funeralhomesim"
	"github.com/shanghai-mca/mzhub/connectors/sftp"
	"github.com/shanghai-mca/mzhub/hub"
	"github.com/shanghai-mca/mzhub/services/disbursement"
)

// demoPersons is the size of the demo's monthly allowance list: big enough
// to show every stage and a few anomalies, small enough to finish in seconds.
const demoPersons = 3000

// demoFuneral prepares the simulated funeral homes and cemeteries: their
// registry replaces the shipped one (whose partners have no credentials
// yet) so the partner guard knows them.
func demoFuneral(log *slog.Logger) (*funeralhomesim.Demo, error) {
	return funeralhomesim.NewDemo(3, 6, log.With("component", "funeral-sim"))
}

// startDemoFlows runs real flows through the hub once it listens: the
// funeral homes push their resources and the cemeteries their burial records
// through the signed partner API, and the month's allowance cycle runs
// against the six simulated banks over loopback SFTP.
func startDemoFlows(ctx context.Context, h *hub.Hub, w *wired, fd *funeralhomesim.Demo) error {
	cfg := h.Config()
	log := h.Logger().With("component", "demo")
	if fd != nil {
		if err := fd.StoreKeys(ctx, w.sec.Keys); err != nil {
			return fmt.Errorf("demo: partner keys: %w", err)
		}
		h.AddComponent("funeral-sim", hub.ComponentFunc(func(ctx context.Context) error {
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
			w.setBookingURLs(urls)
			<-ctx.Done()
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return fd.Close(cctx)
		}))
	}

	mappingsFS := os.DirFS(cfg.Paths.Mappings)
	sims, err := banksim.StartAllWith(ctx, filepath.Join(cfg.DataDir, "banks"), mappingsFS, banksim.DefaultOptions())
	if err != nil {
		return fmt.Errorf("demo: bank simulators: %w", err)
	}
	h.OnClose(func(context.Context) error {
		for _, s := range sims {
			_ = s.Close()
		}
		return nil
	})
	deps := connectors.Deps{Logger: log, Metrics: h.Registerer(), Store: h.Store(), Clock: h.Clock(), Events: w.mon, DataDir: cfg.DataDir}
	var banks []*bank.Bank
	// The demo runs this month's cycle today: the banks' schedule day is
	// today, so the upload deadlines it registers (18:00) lie ahead and are
	// met, instead of the shipped 5th having passed. schedule_day stops at
	// the 28th: from the 29th on, the calendar shows the uploads late.
	day := min(max(time.Now().In(clock.Shanghai).Day(), 1), 28)
	for _, s := range sims {
		s.Config.ScheduleDay = day
		files, err := bank.LoadFileSet(mappingsFS, s.Config.Layouts)
		if err != nil {
			return fmt.Errorf("demo: %s layouts: %w", s.Config.Code, err)
		}
		b, err := bank.New(s.Config, files, deps, "disbursement", sftp.Keys{Signer: w.sec.FileSigner})
		if err != nil {
			return fmt.Errorf("demo: bank %s: %w", s.Config.Code, err)
		}
		h.OnClose(b.SFTP.Close)
		banks = append(banks, b)
	}
	dc := disbursement.DefaultConfig()
	dc.Dir = filepath.Join(cfg.DataDir, "disbursement")
	dc.PollEvery = 200 * time.Millisecond
	svc, err := disbursement.New(ctx, dc, banks, deps, auditAdapter{w.sec.Audit})
	if err != nil {
		return fmt.Errorf("demo: disbursement: %w", err)
	}
	svc.SetExpecter(w.mon)
	h.AddComponent("demo-disbursement", hub.ComponentFunc(func(ctx context.Context) error {
		err := runDemoCycle(ctx, svc, dc.Dir, log)
		if err != nil && ctx.Err() == nil {
			log.Error("demo allowance cycle stopped", "err", err)
		}
		<-ctx.Done()
		return nil
	}))
	return nil
}

// runDemoCycle runs this month's allowance cycle as ops would: intake and
// checks, then the official letter total is entered and the district and
// city confirm, then files go out and returns come back.
func runDemoCycle(ctx context.Context, svc *disbursement.Service, dir string, log *slog.Logger) error {
	period := time.Now().In(clock.Shanghai).Format("2006-01")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	list := filepath.Join(dir, "demo-list-"+period+".csv")
	f, err := os.Create(list)
	if err != nil {
		return err
	}
	err = disbursement.WriteList(f, disbursement.GenerateOptions{Persons: demoPersons, Seed: 1, Period: period, Anomalies: true})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write demo list: %w", err)
	}
	_, err = svc.Run(ctx, disbursement.RunOptions{Period: period, ListFile: list})
	if err != nil && !errors.Is(err, disbursement.ErrAwaitingConfirmation) && !errors.Is(err, disbursement.ErrTotalMismatch) {
		return err
	}
	// The batch stops at the total check until the official letter's total
	// is entered; in the demo the letter matches the system total.
	b, err := svc.Batch(ctx, bank.Disbursement, period)
	if err != nil {
		return err
	}
	log.Info("demo allowance batch checked; entering the letter total and confirming", "period", period, "records", b.Records, "valid", b.Valid, "system_total_fen", b.SystemTotal)
	b, err = svc.Run(ctx, disbursement.RunOptions{Period: period, LetterTotal: b.SystemTotal,
		ConfirmDistrict: "demo.district-officer", ConfirmCity: "demo.city-officer"})
	if err != nil {
		return err
	}
	log.Info("demo allowance cycle finished", "period", period, "stage", b.Stage, "status", b.Status)
	return nil
}
