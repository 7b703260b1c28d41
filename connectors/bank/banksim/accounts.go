package banksim

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/mappings"
	"github.com/shanghai-mca/mzhub/security/mask"
)

// Account states in the simulated bank's book.
const (
	simOpened = "opened" // opened, not activated yet
	simActive = "active"
	simLost   = "lost"
	simFrozen = "frozen"
	simClosed = "closed"
)

// simAccount is one account in the simulated bank's book.
type simAccount struct {
	personID, name, state string
}

// FailPerson makes every later request about the person with this ID
// number fail with outcome (bank.OutcomeMismatch, bank.OutcomeIDInvalid,
// …), as a bank whose records disagree with the hub's; an empty outcome
// clears it (the person's data was corrected).
func (b *Bank) FailPerson(idNumber, outcome string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.forced == nil {
		b.forced = map[string]string{}
	}
	if outcome == "" {
		delete(b.forced, idNumber)
		return
	}
	b.forced[idNumber] = outcome
}

// Freeze puts an account of the bank's book in the frozen state (a
// judicial freeze): verifications and activations of it fail.
func (b *Bank) Freeze(account, idNumber, name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.book()[account] = &simAccount{personID: idNumber, name: name, state: simFrozen}
}

// AccountState returns the state of an account in the bank's book ("" if
// the bank never saw it).
func (b *Bank) AccountState(account string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if a := b.book()[account]; a != nil {
		return a.state
	}
	return ""
}

// AccountsAnswered counts the account requests answered, by operation.
func (b *Bank) AccountsAnswered(op bank.AccountOp) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.answered[op]
}

func (b *Bank) book() map[string]*simAccount {
	if b.accounts == nil {
		b.accounts = map[string]*simAccount{}
	}
	return b.accounts
}

// takeAccounts answers an account request file: one result per request,
// in the bank's result layout (CCB in several parts, in another order).
func (b *Bank) takeAccounts(name string, data []byte) error {
	if b.files.Account == nil || b.files.AccountReturn == nil {
		return fmt.Errorf("no account layouts")
	}
	now := time.Now().In(clock.Shanghai)
	var results []bank.AccountResult
	res, err := bank.ReadAccountRequests(b.files.Account, bytes.NewReader(data), func(r mappings.Reject) {
		b.log.Warn("sim: account request refused", "file", name, "reject", r.String())
	}, func(q *bank.AccountRequest) error {
		results = append(results, b.decideAccount(q, now))
		return nil
	})
	if err != nil {
		return fmt.Errorf("read %s: %w", name, err)
	}
	if res.Refused != nil {
		b.log.Warn("sim: account file refused", "file", name, "err", res.Refused)
	}
	parts := 1
	if b.Config.MultiPartReturns {
		parts = max(1, min(b.opts.Parts, len(results)))
	}
	base := strings.TrimSuffix(name, filepath.Ext(name))
	ext := bank.Ext(b.files.AccountReturn)
	outDir := filepath.Join(b.Root(), filepath.FromSlash(b.Config.SFTP.PollDir))
	corrupt := b.CorruptNextReturn.Swap(0)
	for p := range parts {
		var mine []bank.AccountResult
		for i := p; i < len(results); i += parts {
			mine = append(mine, results[i])
		}
		var buf bytes.Buffer
		w, err := bank.NewAccountWriter(b.files.AccountReturn, &buf, bank.AccountHeader{BatchNo: batchNo(base), FileDate: now,
			Op: res.Op, Count: int64(len(mine)), PartNo: int64(p + 1), PartTotal: int64(parts)})
		if err != nil {
			return err
		}
		if res.Op == "" && len(mine) > 0 {
			w, err = bank.NewAccountWriter(b.files.AccountReturn, &buf, bank.AccountHeader{BatchNo: batchNo(base), FileDate: now,
				Op: mine[0].Op, Count: int64(len(mine)), PartNo: int64(p + 1), PartTotal: int64(parts)})
			if err != nil {
				return err
			}
		}
		for i := range mine {
			if corrupt > 0 {
				corrupt--
				mine[i].Reference = strings.Repeat("#", len(mine[i].Reference))
			}
			if err := w.WriteResult(&mine[i]); err != nil {
				return err
			}
		}
		if err := w.Close(); err != nil {
			return err
		}
		n := base + "_RET" + ext
		if parts > 1 {
			n = fmt.Sprintf("%s_RET_%dOF%d%s", base, p+1, parts, ext)
		}
		tmp, err := os.CreateTemp(b.Root(), ".ret-*")
		if err != nil {
			return err
		}
		if _, err := tmp.Write(buf.Bytes()); err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
			return err
		}
		err = b.publish(outDir, n, tmp)
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		if err != nil {
			return err
		}
	}
	b.log.Info("sim: account file answered", "file", name, "op", string(res.Op), "records", len(results))
	return nil
}

// decideAccount carries out one request on the bank's book.
func (b *Bank) decideAccount(q *bank.AccountRequest, now time.Time) bank.AccountResult {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.answered == nil {
		b.answered = map[bank.AccountOp]int64{}
	}
	b.answered[q.Op]++
	r := bank.AccountResult{Reference: q.Reference, Op: q.Op, Account: q.Account, Name: q.Name, PersonID: q.PersonID, Date: now}
	fail := func(outcome string) bank.AccountResult {
		r.Outcome = outcome
		if q.Op == bank.OpOpen {
			r.Account = ""
		}
		return r
	}
	if o := b.forced[q.PersonID]; o != "" {
		return fail(o)
	}
	if (q.Op == bank.OpVerify || q.Op == bank.OpOpen) && b.opts.AccountFailureRate > 0 {
		h := fnv.New64a()
		_, _ = h.Write([]byte(b.Config.Code + q.Reference))
		if v := h.Sum64(); float64(v%1_000_000)/1_000_000 < b.opts.AccountFailureRate {
			return fail([]string{bank.OutcomeMismatch, bank.OutcomeIDInvalid}[(v>>20)%2])
		}
	}
	book := b.book()
	a := book[q.Account]
	if a != nil && q.Op != bank.OpOpen && (a.personID != q.PersonID || a.name != q.Name) {
		return fail(bank.OutcomeMismatch)
	}
	if a == nil && q.Op != bank.OpOpen {
		// An account the simulation never opened: the bank's older book,
		// taken as active in the person's name.
		a = &simAccount{personID: q.PersonID, name: q.Name, state: simActive}
		book[q.Account] = a
	}
	switch q.Op {
	case bank.OpOpen:
		for _, x := range book {
			if x.personID == q.PersonID && x.state != simClosed {
				return fail(bank.OutcomeDuplicate)
			}
		}
		r.Account = newAccount(b.Config.BankCode, q.PersonID, len(book))
		book[r.Account] = &simAccount{personID: q.PersonID, name: q.Name, state: simOpened}
	case bank.OpVerify:
		switch a.state {
		case simFrozen:
			return fail(bank.OutcomeFrozen)
		case simClosed:
			return fail(bank.OutcomeClosed)
		case simLost:
			return fail(bank.OutcomeLost)
		}
	case bank.OpActivate:
		switch a.state {
		case simLost:
			return fail(bank.OutcomeLost)
		case simFrozen:
			return fail(bank.OutcomeFrozen)
		case simClosed:
			return fail(bank.OutcomeClosed)
		}
		a.state = simActive
	case bank.OpLoss:
		switch a.state {
		case simClosed:
			return fail(bank.OutcomeClosed)
		case simLost:
			return fail(bank.OutcomeLost)
		}
		a.state = simLost
	case bank.OpUnfreeze:
		if a.state != simLost {
			return fail(bank.OutcomeNotLost)
		}
		a.state = simActive
	case bank.OpClose:
		if a.state == simClosed {
			return fail(bank.OutcomeClosed)
		}
		a.state = simClosed
	}
	r.Outcome = bank.OutcomeOK
	b.log.Debug("sim: account request done", "op", string(q.Op), "account", mask.Account(r.Account))
	return r
}

// binOf are realistic debit-card prefixes of the six banks.
var binOf = map[string]string{"104": "621661", "301": "622262", "303": "622660", "308": "621483", "310": "621792", "105": "621700"}

// newAccount makes a 19-digit card number passing Luhn, deterministic per
// bank, person and book size.
func newAccount(bankCode, idNumber string, n int) string {
	bin := binOf[bankCode]
	if bin == "" {
		bin = "622000"
	}
	h := fnv.New64a()
	_, _ = fmt.Fprintf(h, "%s/%s/%d", bankCode, idNumber, n)
	body := fmt.Sprintf("%s%012d", bin, h.Sum64()%1_000_000_000_000)
	return body + string(rune('0'+luhnDigit(body)))
}

// luhnDigit is the check digit that makes body+digit pass Luhn.
func luhnDigit(body string) int {
	sum := 0
	double := true
	for i := len(body) - 1; i >= 0; i-- {
		d := int(body[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return (10 - sum%10) % 10
}
