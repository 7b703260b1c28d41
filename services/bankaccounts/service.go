package bankaccounts

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/sftp"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/mask"
	"github.com/shanghai-mca/mzhub/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Fields protects ID numbers, names and accounts: a blind index for
// lookups, sealing at rest and opening to write the banks' files
// (security/fieldcrypt.Ring).
type Fields interface {
	BlindIndex(value string) string
	Encrypt(plaintext string) (string, error)
	Decrypt(ciphertext string) (string, error)
}

// Request statuses.
const (
	// StatusQueued: stored, not in a file yet.
	StatusQueued = "queued"
	// StatusFiled: assigned to a request file not yet delivered.
	StatusFiled = "filed"
	// StatusSent: delivered, waiting for the bank's result.
	StatusSent = "sent"
	// StatusDone: the bank carried it out.
	StatusDone = "done"
	// StatusFailed: the bank refused it (outcome, code and reason say why).
	StatusFailed = "failed"
)

// stepFailed reports a step of a pass that could not finish as a failed
// event of partner's flow (monitor.StepFailed), unless its failure was
// reported already with its file (monitor.Reported) or the service is
// stopping.
func (s *Service) stepFailed(ctx context.Context, partner, flow, step string, err error) {
	if ev, ok := monitor.StepFailed(partner, flow, step, err); ok && ctx.Err() == nil {
		s.emit(ev)
	}
}

// Account states (acct_state.state).
const (
	StateVerified     = "verified"
	StateOpened       = "opened"
	StateActive       = "active"
	StateLost         = "lost"
	StateFrozen       = "frozen"
	StateClosed       = "closed"
	StateOpenFailed   = "open_failed"
	StateVerifyFailed = "verify_failed"
)

// Options are what the service needs.
type Options struct {
	// DB is the state store (migrated here); it also holds the SFTP ledgers.
	DB *store.DB
	// Fields seals and indexes the personal fields.
	Fields Fields
	// Banks are the banks with their layouts; banks without account
	// layouts are skipped.
	Banks []*bank.Bank
	// Deps build the SFTP clients of the account flows (Logger, Metrics,
	// Store, Clock, Events, DataDir); nil Events drop the events.
	Deps connectors.Deps
	// Dir is the working directory of the request files.
	Dir string
	// Keys sign the request files as the payment files are signed.
	Keys sftp.Keys
	// Logger and Clock (nil: discard, real time).
	Logger *slog.Logger
	Clock  clock.Clock
	// Node names the replica in events.
	Node string
	// Audit records the operators' retries of failed openings; nil
	// refuses them (they must be audited).
	Audit audit.Appender
	// Expect registers each sent request file's result file as a monitor
	// expectation (monitor/hubmon's *Monitor implements it); nil
	// registers none.
	Expect Expecter
	// ResultDeadline is how long after its upload a request file's result
	// file is due (0: DefaultResultDeadline).
	ResultDeadline time.Duration
}

// Expecter registers expected exchanges in the monitor.
type Expecter = monitor.Expecter

// Service asks the banks for account operations by file and keeps the
// state their results leave.
type Service struct {
	db     *store.DB
	fields Fields
	log    *slog.Logger
	clock  clock.Clock
	events connectors.Events
	dir    string
	node   string

	banks   map[string]*bankFlows
	codes   []string // bank codes in order
	mu      sync.Mutex
	changed chan struct{}
	batchOf BatchOf
	audit   audit.Appender
	expect  Expecter
	due     time.Duration // a result file's deadline after the upload
}

// bankFlows are one bank's account layouts and its SFTP client per operation.
type bankFlows struct {
	b       *bank.Bank
	clients map[bank.AccountOp]*sftp.Client
	err     error // why the bank has no transport
}

// New migrates the schema and builds the SFTP clients of the account flows
// (no I/O beyond reading keys).
func New(ctx context.Context, o Options) (*Service, error) {
	if o.DB == nil || o.Fields == nil {
		return nil, errors.New("accounts: state store and fields required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.ResultDeadline <= 0 {
		o.ResultDeadline = DefaultResultDeadline
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	if err := o.DB.Migrate(ctx, "bankaccounts", sub); err != nil {
		return nil, err
	}
	if err := sftp.Migrate(ctx, o.DB); err != nil {
		return nil, err
	}
	s := &Service{db: o.DB, fields: o.Fields, log: o.Logger.With("service", "accounts"), clock: o.Clock, events: o.Deps.Events,
		dir: o.Dir, node: o.Node, audit: o.Audit, expect: o.Expect, due: o.ResultDeadline, banks: map[string]*bankFlows{}, changed: make(chan struct{})}
	for _, b := range o.Banks {
		if b.Files.Account == nil || b.Files.AccountReturn == nil {
			continue
		}
		bf := &bankFlows{b: b, clients: map[bank.AccountOp]*sftp.Client{}}
		if _, terr := b.Transport(); terr != nil {
			bf.err = terr
		} else {
			deps := o.Deps
			deps.Store = o.DB
			deps.Logger = o.Logger
			for _, op := range bank.AccountOps {
				c, err := sftp.New(b.Config.Partner(), op.Flow(), b.Config.SFTP, deps, o.Keys)
				if err != nil {
					bf.err = err
					break
				}
				bf.clients[op] = c
			}
		}
		s.banks[b.Config.Code] = bf
		s.codes = append(s.codes, b.Config.Code)
	}
	return s, nil
}

// Close closes the SFTP clients.
func (s *Service) Close(ctx context.Context) error {
	var errs []error
	for _, bf := range s.banks {
		for _, c := range bf.clients {
			errs = append(errs, c.Close(ctx))
		}
	}
	return errors.Join(errs...)
}

// Banks lists the codes of the banks taking account files.
func (s *Service) Banks() []string { return append([]string(nil), s.codes...) }

// Changed returns a channel closed at the next change of a request or state.
func (s *Service) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func (s *Service) notify() {
	s.mu.Lock()
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *Service) nowMS() int64 { return s.clock.Now().UnixMilli() }

// PersonKey is the blind index of an ID number.
func (s *Service) PersonKey(id string) string {
	return s.fields.BlindIndex(strings.ToUpper(strings.TrimSpace(id)))
}

func (s *Service) accountKey(acct string) string {
	if acct == "" {
		return ""
	}
	return s.fields.BlindIndex("acct:" + strings.TrimSpace(acct))
}

func (s *Service) emit(ev monitor.Event) {
	if s.events == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = s.clock.Now()
	}
	ev.Component, ev.Node = "accounts", s.node
	s.events.Emit(ev)
}

// Request is an account operation to ask of a bank.
type Request struct {
	// ExtID is the caller's idempotency key: a request submitted twice
	// under one ExtID is stored once.
	ExtID string
	// Bank is the bank's code (boc, …).
	Bank string
	// Op is the operation.
	Op bank.AccountOp
	// PersonID, Name, Account (empty for an opening) and Division.
	PersonID, Name, Account, Division string
	// RetryOf is the ref of the failed request this one retries (set by
	// RetryOpening; "" otherwise).
	RetryOf string
}

// ErrBadRequest: a request that cannot be sent (unknown bank or operation,
// invalid ID number, missing account).
var ErrBadRequest = errors.New("accounts: bad request")

func (s *Service) check(r Request) error {
	var errs []string
	if _, ok := s.banks[r.Bank]; !ok {
		errs = append(errs, fmt.Sprintf("bank %q takes no account files", r.Bank))
	}
	if !r.Op.Valid() {
		errs = append(errs, fmt.Sprintf("operation %q unknown", r.Op))
	}
	if !mask.ValidID(r.PersonID) {
		errs = append(errs, "ID number "+mask.IDNumber(r.PersonID)+" invalid")
	}
	if strings.TrimSpace(r.Name) == "" {
		errs = append(errs, "name missing")
	}
	if r.Op != bank.OpOpen && r.Account == "" {
		errs = append(errs, "account missing")
	}
	if r.ExtID == "" {
		errs = append(errs, "ext_id missing")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %s", ErrBadRequest, strings.Join(errs, "; "))
	}
	return nil
}

// Submit stores requests for the next files, each once by ExtID; it
// returns how many were new. A bad request refuses the whole call
// (nothing stored) with an error naming each problem, masked.
func (s *Service) Submit(ctx context.Context, rs []Request) (int, error) {
	var errs []error
	for i, r := range rs {
		if err := s.check(r); err != nil {
			errs = append(errs, fmt.Errorf("request %d: %w", i+1, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	type sealed struct{ id, name, acct string }
	seals := make([]sealed, len(rs))
	for i, r := range rs {
		var err error
		if seals[i].id, err = s.fields.Encrypt(strings.ToUpper(r.PersonID)); err != nil {
			return 0, err
		}
		if seals[i].name, err = s.fields.Encrypt(r.Name); err != nil {
			return 0, err
		}
		if r.Account != "" {
			if seals[i].acct, err = s.fields.Encrypt(r.Account); err != nil {
				return 0, err
			}
		}
	}
	now := s.nowMS()
	day := s.clock.Now().In(clock.Shanghai).Format("20060102")
	n := 0
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		n = 0
		seq, err := nextSeq(ctx, tx, s.db, day, len(rs))
		if err != nil {
			return err
		}
		ins, err := tx.PrepareContext(ctx, s.db.Rebind(`INSERT INTO acct_requests (ref, ext_id, bank, op, person, id_masked, id_sealed, name_sealed,
			account_index, account_masked, account_sealed, division, retry_of, status, created_ms, updated_ms)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?) ON CONFLICT (ext_id) DO NOTHING`))
		if err != nil {
			return err
		}
		defer ins.Close()
		for i, r := range rs {
			ref := fmt.Sprintf("ZH%s%010d", day, seq+int64(i))
			acctMasked := ""
			if r.Account != "" {
				acctMasked = mask.Account(r.Account)
			}
			res, err := ins.ExecContext(ctx, ref, r.ExtID, r.Bank, string(r.Op), s.PersonKey(r.PersonID), mask.IDNumber(r.PersonID),
				seals[i].id, seals[i].name, s.accountKey(r.Account), acctMasked, seals[i].acct, r.Division, r.RetryOf, now, now)
			if err != nil {
				return err
			}
			if k, _ := res.RowsAffected(); k == 1 {
				n++
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("accounts: submit: %w", err)
	}
	if n > 0 {
		s.notify()
	}
	return n, nil
}

// nextSeq reserves k request numbers of day and returns the first.
func nextSeq(ctx context.Context, tx *sql.Tx, db *store.DB, day string, k int) (int64, error) {
	if _, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO acct_files (name, bank, op, day, records, status, created_ms, updated_ms)
		VALUES (?, '', '', ?, 0, 'seq', 0, 0) ON CONFLICT (name) DO NOTHING`), "seq:"+day, day); err != nil {
		return 0, err
	}
	var n int64
	if err := tx.QueryRowContext(ctx, db.Rebind(`SELECT records FROM acct_files WHERE name = ?`), "seq:"+day).Scan(&n); err != nil {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, db.Rebind(`UPDATE acct_files SET records = ? WHERE name = ?`), n+int64(k), "seq:"+day); err != nil {
		return 0, err
	}
	return n + 1, nil
}

// wait returns after d or at the next change, whichever is first.
func (s *Service) wait(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-s.Changed():
	case <-s.clock.After(d):
	}
}

// Run sends the queued requests and applies the results every interval
// until ctx is done (one replica at a time: the hub runs it as a singleton).
func (s *Service) Run(ctx context.Context, every time.Duration) error {
	for ctx.Err() == nil {
		if err := s.Pass(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("accounts: pass failed; retried at the next", "err", err)
		}
		s.wait(ctx, every)
	}
	return nil
}

// Pass makes one round: for each bank, files and sends the queued requests
// (one file per operation) and applies the result files waiting. One
// bank's or operation's fault does not stop the others; each is reported
// as a failed event of the bank's operation flow (stepFailed) and the
// errors are joined. It starts with the result expectations a crash after
// an upload left unregistered.
func (s *Service) Pass(ctx context.Context) error {
	var errs []error
	if err := s.expectResults(ctx, ""); err != nil {
		errs = append(errs, err)
	}
	for _, code := range s.codes {
		bf := s.banks[code]
		if bf.err != nil {
			continue // reported when requests for it wait (sendBank)
		}
		if err := s.sendBank(ctx, bf); err != nil {
			errs = append(errs, fmt.Errorf("bank %s: send: %w", code, err))
		}
		if err := s.pollBank(ctx, bf); err != nil {
			errs = append(errs, fmt.Errorf("bank %s: results: %w", code, err))
		}
	}
	return errors.Join(errs...)
}

// Open counts the requests not settled yet (queued, filed or sent).
func (s *Service) Open(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM acct_requests WHERE status IN ('queued', 'filed', 'sent')`).Scan(&n)
	return n, err
}
