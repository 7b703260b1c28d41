package banksim

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/sftp"
	"github.com/shanghai-mca/mzhub/mappings"
	"github.com/shanghai-mca/mzhub/services/disbursement/synth"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// TestAccountLifecycle runs 开户, 激活, 挂失, 解挂失, 注销 and 核查 through
// the SFTP servers of BOC and CCB (several result parts, another order):
// an injected name mismatch refuses an opening, a frozen account fails its
// verification, a release of an account not lost is refused.
func TestAccountLifecycle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfgs, err := ShippedConfigs()
	if err != nil {
		t.Fatal(err)
	}
	db := storetest.Open(t)
	if err := sftp.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	opts := DefaultOptions()
	opts.ReturnDelay = 0
	for _, c := range cfgs {
		if c.Code != "boc" && c.Code != "ccb" {
			continue
		}
		t.Run(c.Code, func(t *testing.T) {
			b, err := Start(ctx, filepath.Join(dir, "sim"), c, os.DirFS(mustMappings(t)), opts)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			local := filepath.Join(dir, c.Code)
			_ = os.MkdirAll(local, 0o750)
			cl, err := sftp.New(b.Config.Partner(), "account", b.Config.SFTP, connectors.Deps{Store: db, DataDir: local}, sftp.Keys{})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close(ctx)
			files, err := bank.LoadFileSet(os.DirFS(mustMappings(t)), b.Config.Layouts)
			if err != nil {
				t.Fatal(err)
			}
			g := synth.New(11)
			var ps []synth.Person
			for range 4 {
				ps = append(ps, g.Next())
			}
			b.FailPerson(ps[3].ID, bank.OutcomeMismatch)
			seq := 0
			exchange := func(op bank.AccountOp, qs []bank.AccountRequest) map[string]bank.AccountResult {
				t.Helper()
				seq++
				var buf bytes.Buffer
				w, err := bank.NewAccountWriter(files.Account, &buf, bank.AccountHeader{BatchNo: fmt.Sprintf("ZH%02d", seq), FileDate: time.Now(), Op: op, PayerName: "上海市民政局", Count: int64(len(qs))})
				if err != nil {
					t.Fatal(err)
				}
				for i := range qs {
					qs[i].Op, qs[i].Reference = op, fmt.Sprintf("ZH%02d%06d", seq, i)
					if err := w.Write(&qs[i]); err != nil {
						t.Fatal(err)
					}
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				name := b.Config.FileNameFor(op.Kind(), fmt.Sprintf("20261202-%02d", seq), bank.Ext(files.Account))
				p := filepath.Join(local, name)
				if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
					t.Fatal(err)
				}
				if _, err := cl.Upload(ctx, sftp.Outbound{LocalPath: p, Name: name, Records: int64(len(qs))}); err != nil {
					t.Fatal(err)
				}
				out := map[string]bank.AccountResult{}
				for round := 0; len(out) < len(qs) && round < 5; round++ {
					wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
					if err := b.Scanned(wctx); err != nil {
						cancel()
						t.Fatal(err)
					}
					cancel()
					base := name[:len(name)-len(filepath.Ext(name))]
					if _, err := cl.Poll(ctx, sftp.PollOptions{Include: []string{base + "_RET*"}}, func(_ context.Context, in sftp.Inbound) error {
						data, err := os.ReadFile(in.LocalPath)
						if err != nil {
							return err
						}
						res, err := bank.ReadAccountResults(files.AccountReturn, bytes.NewReader(data), func(r mappings.Reject) { t.Errorf("reject %s", r) },
							func(r *bank.AccountResult) error { out[r.Reference] = *r; return nil })
						if err == nil && res.Refused != nil {
							err = res.Refused
						}
						return err
					}); err != nil {
						t.Fatal(err)
					}
				}
				if len(out) != len(qs) {
					t.Fatalf("%s: %d results for %d requests", op, len(out), len(qs))
				}
				return out
			}
			req := func(p synth.Person, account string) bank.AccountRequest {
				return bank.AccountRequest{PersonID: p.ID, Name: p.Name, Account: account, Division: p.Division}
			}
			// 开户: three open, the fourth's name does not match.
			opened := exchange(bank.OpOpen, []bank.AccountRequest{req(ps[0], ""), req(ps[1], ""), req(ps[2], ""), req(ps[3], "")})
			accts := make([]string, 4)
			for i := range 4 {
				r := opened[fmt.Sprintf("ZH%02d%06d", 1, i)]
				accts[i] = r.Account
				if ok := i < 3; r.OK() != ok || (ok && len(r.Account) != 19) || (!ok && (r.Outcome != bank.OutcomeMismatch || r.Text == "" || r.Account != "")) {
					t.Fatalf("opening %d: %+v", i, r)
				}
				if i < 3 && b.AccountState(r.Account) != simOpened {
					t.Fatalf("opening %d: book says %q", i, b.AccountState(r.Account))
				}
			}
			// A second opening for the same person is a duplicate.
			if r := exchange(bank.OpOpen, []bank.AccountRequest{req(ps[0], "")})["ZH02000000"]; r.Outcome != bank.OutcomeDuplicate {
				t.Fatalf("second opening: %+v", r)
			}
			exchange(bank.OpActivate, []bank.AccountRequest{req(ps[0], accts[0]), req(ps[1], accts[1]), req(ps[2], accts[2])})
			if b.AccountState(accts[0]) != simActive {
				t.Fatalf("activated: %q", b.AccountState(accts[0]))
			}
			b.Freeze(accts[2], ps[2].ID, ps[2].Name)
			lost := exchange(bank.OpLoss, []bank.AccountRequest{req(ps[0], accts[0])})
			if !lost["ZH04000000"].OK() || b.AccountState(accts[0]) != simLost {
				t.Fatalf("loss: %+v", lost)
			}
			un := exchange(bank.OpUnfreeze, []bank.AccountRequest{req(ps[0], accts[0]), req(ps[1], accts[1])})
			if !un["ZH05000000"].OK() || un["ZH05000001"].Outcome != bank.OutcomeNotLost {
				t.Fatalf("release: %+v", un)
			}
			vs := exchange(bank.OpVerify, []bank.AccountRequest{req(ps[0], accts[0]), req(ps[2], accts[2]), req(ps[1], accts[0])})
			if !vs["ZH06000000"].OK() || vs["ZH06000001"].Outcome != bank.OutcomeFrozen || vs["ZH06000002"].Outcome != bank.OutcomeMismatch {
				t.Fatalf("verify: %+v", vs)
			}
			cl2 := exchange(bank.OpClose, []bank.AccountRequest{req(ps[1], accts[1]), req(ps[1], accts[1])})
			if !cl2["ZH07000000"].OK() || cl2["ZH07000001"].Outcome != bank.OutcomeClosed || b.AccountState(accts[1]) != simClosed {
				t.Fatalf("close: %+v", cl2)
			}
			if n := b.AccountsAnswered(bank.OpOpen); n != 5 {
				t.Errorf("%d openings answered, want 5", n)
			}
		})
	}
}
