package hub

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/bank/banksim"
	"github.com/shanghai-mca/mzhub/connectors/datasea/dataseasim"
	"github.com/shanghai-mca/mzhub/connectors/sftp"
	"github.com/shanghai-mca/mzhub/monitor/console"
	"github.com/shanghai-mca/mzhub/problem"
	"github.com/shanghai-mca/mzhub/services/bankaccounts"
	"github.com/shanghai-mca/mzhub/services/disbursement"
	"github.com/shanghai-mca/mzhub/services/disbursement/synth"
)

// AccountsLease is the lease of the one runner of the account files.
const AccountsLease = "accounts.files"

// wireAccounts adds the banks' account lifecycle (services/bankaccounts): the
// account request files (核查, 开户, 激活, 挂失, 解挂失, 注销) to every bank
// with account layouts and their result files, run by one replica, and the
// screening of allowance lists by account state, chained after the
// allowance rules' screening. opts.Demo asks the simulated banks for the
// month's openings, verifications, loss reports and a closure before the
// demo's list is cut, with some openings refused (开户失败).
func wireAccounts(ctx context.Context, h *Hub, opts Options, singleton singletonFunc) error {
	if h.disbursement == nil || len(h.bankCfgs) == 0 {
		return nil
	}
	cfg := h.Config()
	log := h.Logger().With("component", "accounts")
	deps := connectors.Deps{Logger: log, Metrics: h.Registerer(), Store: h.Store(), Clock: h.Clock(), Events: h.mon, DataDir: cfg.DataDir}
	banks, err := Banks(h.bankCfgs, cfg.Paths.Mappings, deps, &sftp.Keys{Signer: h.sec.FileSigner}, func(code string, err error) {
		log.Error("bank unavailable: account files to it wait", "bank", code, "err", err)
	})
	if err != nil {
		return err
	}
	for _, b := range banks {
		if b.SFTP != nil {
			h.OnClose(b.SFTP.Close)
		}
	}
	svc, err := bankaccounts.New(ctx, bankaccounts.Options{DB: h.Store(), Fields: h.sec.Fields, Banks: banks, Deps: deps,
		Dir: filepath.Join(cfg.DataDir, "accounts"), Keys: sftp.Keys{Signer: h.sec.FileSigner}, Logger: log, Clock: h.Clock(), Node: h.Node(), Audit: h.sec.Audit,
		Expect: h.mon, ResultDeadline: bankaccounts.ConfigFrom(cfg).ResultDeadline}) // each sent file's result expected (accounts.result_deadline)
	if err != nil {
		return err
	}
	if len(svc.Banks()) == 0 {
		return nil
	}
	h.OnClose(svc.Close)
	svc.SetBatchOf(disbursement.ScreenedBatch)
	if prev := h.disbursement.Screener(); prev != nil {
		h.disbursement.SetScreener(bankaccounts.Chain(prev, svc))
	} else {
		h.disbursement.SetScreener(svc)
	}
	every := 30 * time.Second
	if opts.Demo {
		every = time.Second
		if err := demoAccounts(ctx, h, svc); err != nil {
			log.Warn("accounts: demo operations", "err", err)
		}
	}
	guard := func(next http.Handler) http.Handler { return problem.Recover(log, h.sec.Partners.Middleware(next)) }
	h.Handle("/internal/accounts/", guard(http.StripPrefix("/internal/accounts", svc.APIHandler())))
	h.AddComponent(AccountsLease, singleton(AccountsLease, func(ctx context.Context) error { return svc.Run(ctx, every) }))
	h.accounts = svc
	return nil
}

// Accounts returns the account lifecycle service (nil when no bank takes
// account files).
func (h *Hub) Accounts() *bankaccounts.Service { return h.accounts }

// demoAccountBanks are the banks the demo's account operations go to (the
// others' simulators are slow or down on purpose: demoTrouble).
var demoAccountBanks = map[string]bool{"boc": true, "bocom": true, "ccb": true, "ceb": true}

// DemoAccountFailures is how many persons of the demo list the month's
// account operations leave out: 3 openings refused, a verification
// refused for a name mismatch, a frozen account, a lost card and a closed
// account.
const DemoAccountFailures = 7

// demoAccounts plays the allowance office's account requests of the demo
// month and waits (bounded) until the banks have answered, so that the
// month's list is screened with the results: persons of the demo list get
// 开户 (three refused: name mismatch, failed ID check), 核查 (one name
// mismatch, one frozen account), 激活, 挂失 (one released again by 解挂失)
// and one 注销.
func demoAccounts(ctx context.Context, h *Hub, svc *bankaccounts.Service) error {
	sims := map[string]*banksim.Bank{}
	for _, s := range h.bankSims {
		sims[s.Config.Code] = s
	}
	var ps []synth.Person
	for i, p := range dataseasim.Persons(1, DemoPersons) {
		if i%97 == 13 && demoAccountBanks[synth.Banks[p.Bank].Code] && sims[synth.Banks[p.Bank].Code] != nil {
			ps = append(ps, p)
		}
		if len(ps) == 16 {
			break
		}
	}
	if len(ps) < 16 {
		return errors.New("too few demo persons at the demo's banks")
	}
	code := func(p synth.Person) string { return synth.Banks[p.Bank].Code }
	req := func(ext string, op bank.AccountOp, p synth.Person, acct string) bankaccounts.Request {
		return bankaccounts.Request{ExtID: "demo-" + ext, Bank: code(p), Op: op, PersonID: p.ID, Name: p.Name, Account: acct, Division: p.Division}
	}
	// The banks' records: two refusals of an opening, one of a
	// verification, a judicially frozen account.
	sims[code(ps[0])].FailPerson(ps[0].ID, bank.OutcomeMismatch)
	sims[code(ps[1])].FailPerson(ps[1].ID, bank.OutcomeIDInvalid)
	sims[code(ps[2])].FailPerson(ps[2].ID, bank.OutcomeMismatch)
	sims[code(ps[8])].FailPerson(ps[8].ID, bank.OutcomeMismatch)
	sims[code(ps[9])].Freeze(ps[9].Account, ps[9].ID, ps[9].Name)
	var rs []bankaccounts.Request
	for i := range 6 { // 开户 for six new recipients, three refused
		rs = append(rs, req(fmt.Sprint("open-", i), bank.OpOpen, ps[i], ""))
	}
	for i := 6; i < 12; i++ { // 核查 of six accounts, two refused
		rs = append(rs, req(fmt.Sprint("verify-", i), bank.OpVerify, ps[i], ps[i].Account))
	}
	rs = append(rs, req("loss-12", bank.OpLoss, ps[12], ps[12].Account), req("loss-13", bank.OpLoss, ps[13], ps[13].Account),
		req("unfreeze-13", bank.OpUnfreeze, ps[13], ps[13].Account), req("close-14", bank.OpClose, ps[14], ps[14].Account),
		req("activate-15", bank.OpActivate, ps[15], ps[15].Account))
	if _, err := svc.Submit(ctx, rs); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		if err := svc.Pass(wctx); err != nil && wctx.Err() == nil {
			h.Logger().Warn("accounts: demo pass", "err", err)
		}
		n, err := svc.Open(wctx)
		if err != nil || n == 0 {
			return err
		}
		for _, s := range sims {
			if err := s.Scanned(wctx); err != nil {
				return fmt.Errorf("%d account requests unanswered: %w", n, err)
			}
		}
	}
}

// consoleAccounts lets the console's 开户失败 page list and retry the failed
// openings of the account lifecycle service, looked up on each call (the
// console is built before the service; without banks taking account
// files the list is empty). The service audits every retry.
type consoleAccounts struct{ h *Hub }

var _ console.AccountFailures = consoleAccounts{}

func (c consoleAccounts) FailedOpenings(ctx context.Context, limit int) ([]console.FailedOpening, error) {
	svc := c.h.accounts
	if svc == nil {
		return nil, nil
	}
	fs, err := svc.FailedOpenings(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]console.FailedOpening, len(fs))
	for i, f := range fs {
		out[i] = console.FailedOpening{Ref: f.Ref, Bank: f.Bank, IDMasked: f.IDMasked, NameMasked: f.NameMasked, Division: f.Division,
			Outcome: f.Outcome, Code: f.Code, Reason: f.Reason, Failed: f.Failed, Blocking: f.Blocking, Retry: f.Retry, RetryStatus: f.RetryStatus}
	}
	return out, nil
}

func (c consoleAccounts) RetryOpening(ctx context.Context, ref string, fix console.OpeningFix, user string) (string, error) {
	svc := c.h.accounts
	if svc == nil {
		return "", fmt.Errorf("%w: no bank takes account files", console.ErrNotRetryable)
	}
	retry, err := svc.RetryOpening(ctx, ref, bankaccounts.OpeningFix{Name: fix.Name, Division: fix.Division, Fixed: fix.Fixed, Note: fix.Note}, user)
	for _, m := range []struct{ from, to error }{
		{bankaccounts.ErrNotRetryable, console.ErrNotRetryable},
		{bankaccounts.ErrAlreadyRetried, console.ErrAlreadyRetried},
		{bankaccounts.ErrNoCorrection, console.ErrNoCorrection},
		{bankaccounts.ErrBadCorrection, console.ErrBadCorrection},
	} {
		if errors.Is(err, m.from) {
			return "", fmt.Errorf("%w: %w", m.to, err)
		}
	}
	return retry, err
}
