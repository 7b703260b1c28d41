package disbursement

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/connectors/sftp"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/store"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Stages of a batch, in order.
const (
	StageIntake     = "intake"
	StageValidate   = "validate"
	StageTotalCheck = "total_check"
	StageConfirm    = "confirm"
	StageFiles      = "files"
	StageUpload     = "upload"
	StageReturns    = "returns"
	StageFailures   = "failures"
	StageReport     = "report"
	StageDone       = "done"
)

// Stages lists the stages in order.
var Stages = []string{StageIntake, StageValidate, StageTotalCheck, StageConfirm, StageFiles, StageUpload, StageReturns, StageFailures, StageReport, StageDone}

// Payment status codes in disb_payments.
const (
	StatusListed   = 0
	StatusRejected = 1
	StatusSent     = 2
	StatusPaid     = 3
	StatusFailed   = 4
	StatusMissing  = 5
)

// StatusName names a status code.
func StatusName(s int) string {
	return [...]string{"listed", "rejected", "sent", "paid", "failed", "missing"}[s]
}

// Sentinel errors.
var (
	// ErrTotalMismatch: the letter total differs from the system total; the run stops.
	ErrTotalMismatch = errors.New("disbursement: letter total does not equal the system total")
	// ErrAwaitingLetterTotal: the batch waits for the official letter's
	// total (发函总额) to be entered; nothing goes out before it matches.
	ErrAwaitingLetterTotal = errors.New("disbursement: awaiting the official letter total")
	// ErrAwaitingConfirmation: the batch waits for district or city confirmation.
	ErrAwaitingConfirmation = errors.New("disbursement: awaiting confirmation")
	// ErrNoBatch: no batch for the period.
	ErrNoBatch = errors.New("disbursement: no such batch")
	// ErrBadPeriod: a period that is not YYYY-MM.
	ErrBadPeriod = errors.New("disbursement: period must be YYYY-MM")
	// ErrConfirmOrder: city confirmation before the district's, or the same user twice.
	ErrConfirmOrder = errors.New("disbursement: confirmation out of order")
	// ErrSameConfirmer: the city level confirmed by the user who confirmed
	// the district level; it comes wrapped with ErrConfirmOrder.
	ErrSameConfirmer = errors.New("city must be confirmed by another user than the district")
	// ErrNotInInbox: a list name that is not a .csv file in the inbox.
	ErrNotInInbox = errors.New("disbursement: no such list in the inbox")
	// ErrReturnRefused: a bank's return file failed a check (empty,
	// truncated, trailer count or total, charset; mappings.Reader.Verdict)
	// and was not reconciled; the bank waits for a correct return, and the
	// returns stage stops at its deadline instead of settling the bank.
	ErrReturnRefused = errors.New("disbursement: bank return refused")
)

// Expecter registers expected exchanges in the monitor (monitor/hubmon's
// *Monitor implements it); the service expects each bank's return file by
// the bank's return deadline.
type Expecter = monitor.Expecter

// Service runs disbursement and deduction cycles.
type Service struct {
	db     *store.DB
	banks  []*bank.Bank // sorted by code; index = bank number in disb_payments
	byCode map[string]int
	byCNAP map[string]int
	deps   connectors.Deps
	log    *slog.Logger
	cfg    Config
	audit  audit.Appender
	expect Expecter
	sealer Sealer
	keyer  *personKeyer
	// screener is consulted by the intake (SetScreener).
	screener Screener
	// dedScreener is consulted by the intake of deductions (SetDeductionScreener).
	dedScreener Screener

	wakeup chan struct{} // a batch was queued (Submit, Confirm)

	changedMu sync.Mutex
	changed   chan struct{} // closed (and replaced) after every batch write

	reconcileMu sync.Mutex    // one return file is applied at a time
	parseSem    chan struct{} // bounds the return files parsed at once
}

// SetExpecter makes the service register the return-file deadlines as
// monitor expectations; call it before Run.
func (s *Service) SetExpecter(e Expecter) { s.expect = e }

// New returns the service over the configured banks; it migrates its
// schema and the SFTP ledgers and re-keys legacy person keys. personKey is
// the key provider's disbursement-person key (keys.DisbursementPersonName):
// person keys are HMAC-SM3 under it.
func New(ctx context.Context, cfg Config, banks []*bank.Bank, deps connectors.Deps, aud audit.Appender, personKey []byte) (*Service, error) {
	if deps.Store == nil {
		return nil, errors.New("disbursement: no state store")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Dir == "" {
		return nil, errors.New("disbursement.dir: required (ConfigFrom sets it under data_dir)")
	}
	keyer, err := newPersonKeyer(personKey)
	if err != nil {
		return nil, err
	}
	if deps.Clock == nil {
		deps.Clock = clock.Real{}
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return nil, err
	}
	if err := deps.Store.Migrate(ctx, "disbursement", sub); err != nil {
		return nil, err
	}
	if err := sftp.Migrate(ctx, deps.Store); err != nil {
		return nil, err
	}
	bs := append([]*bank.Bank(nil), banks...)
	sort.Slice(bs, func(i, j int) bool { return bs[i].Config.Code < bs[j].Config.Code })
	s := &Service{db: deps.Store, banks: bs, byCode: map[string]int{}, byCNAP: map[string]int{}, deps: deps,
		log: deps.Logger.With("service", "disbursement"), cfg: cfg, audit: aud, keyer: keyer, parseSem: make(chan struct{}, 2),
		wakeup: make(chan struct{}, 1)}
	for i, b := range bs {
		s.byCode[b.Config.Code] = i
		s.byCNAP[b.Config.BankCode] = i
	}
	if err := s.rekeyLegacy(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Kind of a cycle.
type Kind = bank.Kind

// Batch is the state of one cycle.
type Batch struct {
	ID                       int64
	Name, Kind, Period       string
	Stage, Status            string
	LetterTotal, SystemTotal int64
	Records, Valid           int64
	FileDate                 time.Time
	Error                    string
}

// BatchName is the name of the batch of a kind and period.
func BatchName(k Kind, period string) string { return string(k) + "-" + period }

func (s *Service) dir(b *Batch) string { return filepath.Join(s.cfg.Dir, b.Name) }

// Batch loads a batch.
func (s *Service) Batch(ctx context.Context, k Kind, period string) (*Batch, error) {
	var b Batch
	var fd string
	err := s.db.QueryRowContext(ctx, s.db.Rebind(`SELECT id, name, kind, period, stage, status, letter_total, system_total, records, valid, file_date, error
		FROM disb_batches WHERE name = ?`), BatchName(k, period)).Scan(&b.ID, &b.Name, &b.Kind, &b.Period, &b.Stage, &b.Status,
		&b.LetterTotal, &b.SystemTotal, &b.Records, &b.Valid, &fd, &b.Error)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", ErrNoBatch, BatchName(k, period))
	}
	if err != nil {
		return nil, fmt.Errorf("disbursement: load batch: %w", err)
	}
	b.FileDate, _ = time.ParseInLocation(time.DateOnly, fd, clock.Shanghai)
	return &b, nil
}

// create inserts the batch of a kind and period with status when it does
// not exist yet, and loads it.
func (s *Service) create(ctx context.Context, k Kind, period, status string) (*Batch, error) {
	if _, err := time.Parse("2006-01", period); err != nil {
		return nil, fmt.Errorf("%w: %q", ErrBadPeriod, period)
	}
	now := s.deps.Clock.Now()
	_, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO disb_batches (name, kind, period, stage, status, file_date, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`), BatchName(k, period), string(k), period, StageIntake, status,
		now.In(clock.Shanghai).Format(time.DateOnly), now.UnixMilli(), now.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("disbursement: create batch: %w", err)
	}
	return s.Batch(ctx, k, period)
}

// RunOptions say what Run does.
type RunOptions struct {
	// Kind is disbursement (default) or deduction.
	Kind Kind
	// Period is the month, "2026-11".
	Period string
	// ListFile is the payment list (list CSV, see WriteList); ignored once intake is done.
	ListFile string
	// LetterTotal is the official letter total in fen; 0 keeps the one stored.
	LetterTotal int64
	// ConfirmDistrict and ConfirmCity confirm the batch on these users' behalf when set.
	ConfirmDistrict, ConfirmCity string
	// Progress, when set, is told about the progress of long stages.
	Progress func(stage string, done, total int64)
}

// Run creates or resumes the batch and runs its stages until done, until
// it needs a confirmation (ErrAwaitingConfirmation) or until a stage fails.
func (s *Service) Run(ctx context.Context, opt RunOptions) (*Batch, error) {
	if opt.Kind == "" {
		opt.Kind = bank.Disbursement
	}
	if opt.Progress == nil {
		opt.Progress = func(string, int64, int64) {}
	} else {
		var mu sync.Mutex
		report := opt.Progress
		opt.Progress = func(stage string, done, total int64) { // stages may report from several goroutines
			mu.Lock()
			defer mu.Unlock()
			report(stage, done, total)
		}
	}
	b, err := s.create(ctx, opt.Kind, opt.Period, BatchRunning)
	if err != nil {
		return nil, err
	}
	if err := s.checkPersonKeys(ctx, b); err != nil {
		return b, err
	}
	if opt.LetterTotal != 0 && opt.LetterTotal != b.LetterTotal {
		if err := s.setBatch(ctx, b, "letter_total = ?", opt.LetterTotal); err != nil {
			return b, err
		}
		b.LetterTotal = opt.LetterTotal
		s.auditf(ctx, systemActor, "letter_total", b.Name, "letter total %s yuan", yuan(opt.LetterTotal))
	}
	if err := os.MkdirAll(s.dir(b), 0o700); err != nil {
		return b, err
	}
	steps := map[string]func(context.Context, *Batch, RunOptions) (string, error){
		StageIntake: s.intake, StageValidate: s.validate, StageTotalCheck: s.totalCheck, StageConfirm: s.confirmStage,
		StageFiles: s.files, StageUpload: s.upload, StageReturns: s.returns, StageFailures: s.failures, StageReport: s.report,
	}
	busyTries := 0
	for b.Stage != StageDone {
		if err := ctx.Err(); err != nil {
			return b, err
		}
		stage := b.Stage
		start := time.Now()
		s.stageEvent(b, stage, monitor.OK, "started", 0)
		_, _ = s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO disb_stages (batch_id, stage, started_at) VALUES (?, ?, ?)
			ON CONFLICT (batch_id, stage) DO UPDATE SET started_at = excluded.started_at`), b.ID, stage, start.UnixMilli())
		detail, err := steps[stage](ctx, b, opt)
		if err != nil && ctx.Err() == nil && transient(err) && busyTries < maxBusyTries {
			// Contention at the state store is not the batch's failure: every
			// stage is resumable (a crash re-runs it), so it runs again.
			busyTries++
			wait := min(time.Duration(busyTries)*time.Second, 10*time.Second)
			s.log.Warn("disbursement: the state store was busy; the stage runs again", "batch", b.Name, "stage", stage,
				"attempt", busyTries, "in", wait.String(), "err", err)
			s.stageEvent(b, stage, monitor.Warning, "state store busy; the stage runs again: "+err.Error(), time.Since(start))
			select {
			case <-ctx.Done():
				return b, fmt.Errorf("disbursement %s: stage %s: %w", b.Name, stage, ctx.Err())
			case <-time.After(wait):
			}
			continue
		}
		busyTries = 0
		if err != nil {
			if ctx.Err() == nil && !Waiting(err) {
				_ = s.setBatch(context.WithoutCancel(ctx), b, "status = 'failed', error = ?", err.Error())
				s.stageEvent(b, stage, monitor.Error, err.Error(), time.Since(start))
			}
			return b, fmt.Errorf("disbursement %s: stage %s: %w", b.Name, stage, err)
		}
		next := Stages[indexOf(stage)+1]
		_, _ = s.db.ExecContext(ctx, s.db.Rebind(`UPDATE disb_stages SET finished_at = ?, detail = ? WHERE batch_id = ? AND stage = ?`),
			time.Now().UnixMilli(), detail, b.ID, stage)
		if err := s.setBatch(ctx, b, "stage = ?, status = 'running', error = ''", next); err != nil {
			return b, err
		}
		b.Stage = next
		if stage == StageIntake {
			s.expectUploads(ctx, b)
		}
		s.stageEvent(b, stage, monitor.OK, "finished: "+detail, time.Since(start))
		s.log.Info("disbursement stage done", "batch", b.Name, "stage", stage, "took", time.Since(start).Round(time.Millisecond).String(), "detail", detail)
	}
	// The batch is closed: what the hub keeps of its personal data is
	// sealed or removed (docs/disbursement.md, "Retention").
	if err := s.closeBatch(ctx, b); err != nil {
		return b, err
	}
	_ = s.setBatch(ctx, b, "status = 'done'")
	b.Status = "done"
	return b, nil
}

// Waiting reports whether err stops a run to wait for people (a letter
// total, a confirmation) rather than for a failure.
func Waiting(err error) bool {
	return errors.Is(err, ErrAwaitingConfirmation) || errors.Is(err, ErrAwaitingLetterTotal)
}

// UploadHour is the hour (Asia/Shanghai) of a bank's schedule day by which
// the batch's file must have gone out.
const UploadHour = 18

// expectUploads tells the monitor, once the list is in, that each bank with
// persons in the batch expects its file by the bank's schedule_day of the
// period's month, 18:00 Asia/Shanghai. The expected-file calendar shows it;
// a cycle still short of the upload then (waiting for a confirmation, a
// failed stage) raises an expectation-missed alert. A bank without persons
// this time gets no file and no expectation.
func (s *Service) expectUploads(ctx context.Context, b *Batch) {
	if s.expect == nil {
		return
	}
	month, err := time.ParseInLocation("2006-01", b.Period, clock.Shanghai)
	if err != nil {
		return
	}
	totals, err := s.totalsByBank(ctx, b, "0, 2")
	if err != nil {
		s.log.Warn("disbursement: upload expectations", "batch", b.Name, "err", err)
		return
	}
	for i, bk := range s.banks {
		if totals[i].count == 0 {
			continue
		}
		due := time.Date(month.Year(), month.Month(), bk.Config.ScheduleDay, UploadHour, 0, 0, 0, clock.Shanghai)
		if err := s.expect.Expect(ctx, monitor.Expectation{Name: "upload " + bk.Config.Code + " " + b.Name, Partner: bk.Config.Partner(),
			Flow: flowOf(b), Type: monitor.Sent, BatchID: b.Name, FilePattern: bk.Config.FileNameFor(Kind(b.Kind), b.Period, "*"), Due: due}); err != nil {
			s.log.Warn("disbursement: upload expectation", "bank", bk.Config.Code, "err", err)
		}
	}
}

func indexOf(stage string) int {
	for i, s := range Stages {
		if s == stage {
			return i
		}
	}
	return len(Stages) - 1
}

func (s *Service) setBatch(ctx context.Context, b *Batch, set string, args ...any) error {
	args = append(args, s.deps.Clock.Now().UnixMilli(), b.ID)
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`UPDATE disb_batches SET `+set+`, updated_at = ? WHERE id = ?`), args...); err != nil {
		return fmt.Errorf("disbursement: update batch: %w", err)
	}
	s.notifyChanged()
	return nil
}

// Changed returns a channel closed by the next change this process makes
// to a batch (stage, status, totals). A waiter takes the channel, reads the
// batch, and waits on the channel only if the batch is not yet as wanted:
// no change is missed. Changes made by other replicas are not signalled.
func (s *Service) Changed() <-chan struct{} {
	s.changedMu.Lock()
	defer s.changedMu.Unlock()
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return s.changed
}

func (s *Service) notifyChanged() {
	s.changedMu.Lock()
	defer s.changedMu.Unlock()
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
}

func (s *Service) emit(ev monitor.Event) {
	if s.deps.Events == nil {
		return
	}
	ev.Time = s.deps.Clock.Now()
	if ev.Flow == "" {
		ev.Flow = "disbursement"
	}
	ev.Component = "services/disbursement"
	if ev.Direction == "" {
		ev.Direction = monitor.Internal
	}
	s.deps.Events.Emit(ev)
}

func (s *Service) stageEvent(b *Batch, stage string, st monitor.Status, msg string, d time.Duration) {
	ev := monitor.Event{Type: monitor.StageChanged, Status: st, BatchID: b.Name, Stage: stage, Flow: flowOf(b),
		Records: b.Valid, AmountFen: b.SystemTotal, Duration: d, Attrs: map[string]string{"detail": msg}}
	if st == monitor.Error {
		ev.ErrorMessage = msg
	}
	s.emit(ev)
}

func flowOf(b *Batch) string {
	if b.Kind == string(bank.Deduction) {
		return "deduction"
	}
	return "disbursement"
}

// systemActor is the audit actor of what the service does by itself.
const systemActor = "system:disbursement"

// auditf appends a successful action on target (a batch name) by actor
// (systemActor or a user name) to the audit log.
func (s *Service) auditf(ctx context.Context, actor, action, target, f string, a ...any) {
	s.auditOutcome(ctx, actor, action, target, audit.OutcomeSuccess, f, a...)
}

// auditOutcome is auditf with the outcome (audit.OutcomeFailure, …).
func (s *Service) auditOutcome(ctx context.Context, actor, action, target, outcome, f string, a ...any) {
	if s.audit == nil {
		return
	}
	if _, err := s.audit.Append(ctx, audit.Record{Actor: audit.UserActor(actor), Action: "disbursement." + action, Object: target,
		Outcome: outcome, Detail: fmt.Sprintf(f, a...)}); err != nil {
		s.log.Error("audit", "action", action, "err", err)
	}
}

// Confirm records the district or city confirmation of a batch by a named
// user. City confirmation needs the district's first, by another user.
func (s *Service) Confirm(ctx context.Context, k Kind, period, level, user string) error {
	if level != "district" && level != "city" {
		return fmt.Errorf("disbursement: confirm level %q: want district or city", level)
	}
	if strings.TrimSpace(user) == "" {
		return fmt.Errorf("disbursement: confirm: a named user is required")
	}
	b, err := s.Batch(ctx, k, period)
	if err != nil {
		return err
	}
	if indexOf(b.Stage) < indexOf(StageConfirm) {
		return fmt.Errorf("%w: batch is at stage %s", ErrConfirmOrder, b.Stage)
	}
	conf, err := s.confirmations(ctx, b)
	if err != nil {
		return err
	}
	if level == "city" {
		d, ok := conf["district"]
		if !ok {
			return fmt.Errorf("%w: district has not confirmed", ErrConfirmOrder)
		}
		if d == user {
			return fmt.Errorf("%w: %w", ErrConfirmOrder, ErrSameConfirmer)
		}
	}
	if _, err := s.db.ExecContext(ctx, s.db.Rebind(`INSERT INTO disb_confirmations (batch_id, level, user_name, at) VALUES (?, ?, ?, ?)
		ON CONFLICT DO NOTHING`), b.ID, level, user, s.deps.Clock.Now().UnixMilli()); err != nil {
		return fmt.Errorf("disbursement: confirm: %w", err)
	}
	s.auditf(ctx, user, "confirm."+level, b.Name, "confirmed %d records, %s yuan", b.Valid, yuan(b.SystemTotal))
	s.emit(monitor.Event{Type: monitor.Validated, Status: monitor.OK, BatchID: b.Name, Stage: StageConfirm, Flow: flowOf(b),
		Records: b.Valid, AmountFen: b.SystemTotal, Attrs: map[string]string{"level": level, "user": user}})
	if level == "city" && b.Stage == StageConfirm && (b.Status == BatchAwaiting || b.Status == BatchRunning) {
		// Both levels have confirmed: the cycle goes on. A runner still in
		// the confirmation stage sees the batch queued and runs it again.
		if err := s.setBatch(ctx, b, "status = ?", BatchQueued); err != nil {
			return err
		}
		s.wake()
	}
	return nil
}

// Confirmation is one level's confirmation of a batch.
type Confirmation struct {
	// Level is district or city.
	Level string
	// User is who confirmed.
	User string
	// At is when.
	At time.Time
}

// Confirmations lists the confirmations of a batch, district first.
func (s *Service) Confirmations(ctx context.Context, k Kind, period string) ([]Confirmation, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT c.level, c.user_name, c.at FROM disb_confirmations c
		JOIN disb_batches b ON b.id = c.batch_id WHERE b.name = ?`), BatchName(k, period))
	if err != nil {
		return nil, fmt.Errorf("disbursement: confirmations: %w", err)
	}
	defer rows.Close()
	var out []Confirmation
	for rows.Next() {
		var c Confirmation
		var at int64
		if err := rows.Scan(&c.Level, &c.User, &at); err != nil {
			return nil, fmt.Errorf("disbursement: confirmations: %w", err)
		}
		c.At = time.UnixMilli(at)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Level == "district" && out[j].Level != "district" })
	return out, rows.Err()
}

func (s *Service) confirmations(ctx context.Context, b *Batch) (map[string]string, error) {
	rows, err := s.db.QueryContext(ctx, s.db.Rebind(`SELECT level, user_name FROM disb_confirmations WHERE batch_id = ?`), b.ID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var l, u string
		if err := rows.Scan(&l, &u); err != nil {
			return nil, err
		}
		out[l] = u
	}
	return out, rows.Err()
}

func (s *Service) confirmStage(ctx context.Context, b *Batch, opt RunOptions) (string, error) {
	if opt.ConfirmDistrict != "" {
		if err := s.Confirm(ctx, Kind(b.Kind), b.Period, "district", opt.ConfirmDistrict); err != nil {
			return "", err
		}
	}
	if opt.ConfirmCity != "" {
		if err := s.Confirm(ctx, Kind(b.Kind), b.Period, "city", opt.ConfirmCity); err != nil {
			return "", err
		}
	}
	conf, err := s.confirmations(ctx, b)
	if err != nil {
		return "", err
	}
	if conf["district"] == "" || conf["city"] == "" {
		return "", ErrAwaitingConfirmation
	}
	return fmt.Sprintf("district %s, city %s", conf["district"], conf["city"]), nil
}

// maxBusyTries bounds how often Run runs a stage again after the state
// store answered busy (SQLITE_BUSY, a serialization failure) before the
// batch fails.
const maxBusyTries = 10

// transient reports whether err, and every error joined in it (returns
// joins one per bank), is contention at the state store.
func transient(err error) bool {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs := j.Unwrap()
		for _, e := range errs {
			if !transient(e) {
				return false
			}
		}
		return len(errs) > 0
	}
	return store.IsTransient(err)
}
