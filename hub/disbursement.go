package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/bank/banksim"
	"github.com/shanghai-mca/mzhub/connectors/sftp"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/accounts"
	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/services/disbursement"
	"github.com/shanghai-mca/mzhub/store/lease"
)

// CycleLease is the lease held by the one runner of allowance cycles (a
// replica of serve, or a CLI run when no hub runs).
const CycleLease = "disbursement.cycles"

// BankConfigs reads the bank partner files under the configured partners
// directory (partners/banks); none when the directory does not exist.
func BankConfigs(cfgPaths string) ([]bank.Config, error) {
	dir := filepath.Join(cfgPaths, "banks")
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	cs, err := bank.LoadConfigs(dir)
	if err != nil {
		return nil, fmt.Errorf("banks: %w", err)
	}
	return cs, nil
}

// DisbursementConfig is the service's configuration for cfg: its
// disbursement section, the working files under the data directory unless
// the section sets its dir.
func DisbursementConfig(cfg config.Config) disbursement.Config {
	return disbursement.ConfigFrom(cfg)
}

// Banks builds the banks of cfgs with their layouts and SFTP transports. A
// bank whose transport cannot be built (a missing key file) is kept without
// one: the hub starts, the failure is reported through report, and a cycle
// that needs the bank stops at its upload with the cause.
func Banks(cfgs []bank.Config, mappingsDir string, deps connectors.Deps, keys *sftp.Keys, report func(code string, err error)) ([]*bank.Bank, error) {
	var out []*bank.Bank
	for _, c := range cfgs {
		files, err := bank.LoadFileSet(os.DirFS(mappingsDir), c.Layouts)
		if err != nil {
			return nil, fmt.Errorf("bank %s: layouts: %w", c.Code, err)
		}
		if keys == nil { // no transport wanted: status, confirm and report
			out = append(out, &bank.Bank{Config: c, Files: files, Unavailable: errors.New("opened without transport")})
			continue
		}
		b, err := bank.New(c, files, deps, "disbursement", *keys)
		if err != nil {
			if report != nil {
				report(c.Code, err)
			}
			b = &bank.Bank{Config: c, Files: files, Unavailable: err}
		}
		out = append(out, b)
	}
	return out, nil
}

// wireDisbursement adds the allowance disbursement service: its cycle
// runner (one replica at a time), the return-file and upload expectations
// in the monitor, and the console's cycle actions.
func (h *Hub) wireDisbursement(ctx context.Context, cfgs []bank.Config, dc disbursement.Config, singleton singletonFunc) error {
	if err := h.newDisbursement(ctx, cfgs, &sftp.Keys{Signer: h.sec.FileSigner}, dc); err != nil {
		return err
	}
	svc := h.disbursement
	h.AddComponent("disbursement", singleton(CycleLease, func(ctx context.Context) error {
		return svc.Serve(ctx, 5*time.Second)
	}))
	canAct := func(r *http.Request) bool {
		u, ok := accounts.UserFrom(r.Context())
		return ok && u.Role == accounts.RoleOperator
	}
	h.Handle("/console/disbursement/", h.sec.Accounts.Guard(accounts.RoleOperator, accounts.RoleAuditor)(
		http.StripPrefix("/console/disbursement", svc.OpsHandler(accounts.RequestUser, canAct))))
	return nil
}

// newDisbursement builds the service over the banks of cfgs. With keys nil
// the banks get no transport (a service that reads and confirms only).
func (h *Hub) newDisbursement(ctx context.Context, cfgs []bank.Config, keys *sftp.Keys, dc disbursement.Config) error {
	cfg := h.Config()
	log := h.Logger()
	deps := connectors.Deps{Logger: log, Metrics: h.Registerer(), Store: h.Store(), Clock: h.Clock(), Events: h.mon, DataDir: cfg.DataDir}
	banks, err := Banks(cfgs, cfg.Paths.Mappings, deps, keys, func(code string, err error) {
		log.Error("bank unavailable: cycles that pay through it stop at the upload", "bank", code, "err", err)
		h.mon.Emit(monitor.Event{Type: monitor.Failed, Status: monitor.Error, Time: h.Clock().Now(), Partner: "bank." + code,
			Flow: "disbursement", Direction: monitor.Outbound, Component: "hub", Node: h.Node(), ErrorMessage: err.Error()})
	})
	if err != nil {
		return fmt.Errorf("wire: disbursement: %w", err)
	}
	for _, b := range banks {
		if b.SFTP != nil {
			h.OnClose(b.SFTP.Close)
		}
	}
	personKey, err := h.disbursementPersonKey(ctx)
	if err != nil {
		return err
	}
	svc, err := disbursement.New(ctx, dc, banks, deps, h.sec.Audit, personKey)
	if err != nil {
		return fmt.Errorf("wire: disbursement: %w", err)
	}
	svc.SetExpecter(h.mon)
	svc.SetSealer(h.sec.Fields) // the list copy kept after a batch closes is sealed like bus bodies
	h.disbursement = svc
	return nil
}

// disbursementPersonKey fetches the key of the service's person keys
// (HMAC-SM3) from the key provider.
func (h *Hub) disbursementPersonKey(ctx context.Context) ([]byte, error) {
	k, err := h.sec.Keys.Get(ctx, keys.DisbursementPersonName)
	if err != nil {
		return nil, fmt.Errorf("wire: disbursement person key (mzhub keys init creates it): %w", err)
	}
	return k, nil
}

// CycleOptions say how BuildCycles prepares the service.
type CycleOptions struct {
	// Demo runs against the six in-process bank simulators.
	Demo bool
	// Transport builds the banks' SFTP clients (run, resume); without it
	// the service only reads and confirms (status, confirm, report).
	Transport bool
}

// BuildCycles builds the part of the hub a CLI cycle command needs: the
// state store, leases, the security baseline (audit chain, file signer) and
// the monitor writing to the configured event store, and the disbursement
// service wired exactly as serve wires it. The hub is not run: the caller
// uses Disbursement() and Leases() and calls Close, which flushes the
// monitor's events.
func BuildCycles(ctx context.Context, cfg config.Config, log *slog.Logger, opts CycleOptions) (*Hub, error) {
	return build(ctx, cfg, log, func(h *Hub) error { return h.wireCycles(ctx, opts) })
}

func (h *Hub) wireCycles(ctx context.Context, opts CycleOptions) error {
	h.cli = true
	singleton, _, err := h.wireCore(ctx, nil)
	if err != nil {
		return err
	}
	cfg := h.Config()
	var cfgs []bank.Config
	switch {
	case opts.Demo && opts.Transport:
		cfgs, err = h.startBankSims(ctx)
	case opts.Demo:
		cfgs, err = banksim.ShippedConfigs()
	default:
		cfgs, err = BankConfigs(cfg.Paths.Partners)
	}
	if err != nil {
		return err
	}
	dc := DisbursementConfig(cfg)
	if opts.Demo {
		dc.PollEvery = 200 * time.Millisecond
	}
	if !opts.Transport {
		return h.newDisbursement(ctx, cfgs, nil, dc)
	}
	return h.wireDisbursement(ctx, cfgs, dc, singleton)
}

// Leases returns the hub's lease elector (one job runner per lease).
func (h *Hub) Leases() *lease.Elector { return h.leases }
