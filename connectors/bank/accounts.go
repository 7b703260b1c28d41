package bank

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/mappings"
)

// AccountOp is an account operation the hub asks of a bank.
type AccountOp string

// The account operations (code table account-ops); the value is the hub's
// name, the file code the two letters in file names.
const (
	// OpVerify checks that name, ID number and account belong together (核查).
	OpVerify AccountOp = "verify"
	// OpOpen opens an account for a new recipient (开户).
	OpOpen AccountOp = "open"
	// OpActivate activates an opened account (激活).
	OpActivate AccountOp = "activate"
	// OpLoss reports an account's card lost (挂失): payments stop.
	OpLoss AccountOp = "loss"
	// OpUnfreeze releases a loss report (解挂失): payments resume.
	OpUnfreeze AccountOp = "unfreeze"
	// OpClose closes an account (注销): payments stop for good.
	OpClose AccountOp = "close"
)

// AccountOps lists the operations in the tender's order.
var AccountOps = []AccountOp{OpVerify, OpOpen, OpActivate, OpLoss, OpUnfreeze, OpClose}

var opInfo = map[AccountOp]struct{ file, flow, zh string }{
	OpVerify:   {"HC", "account-verify", "核查"},
	OpOpen:     {"KH", "account-open", "开户"},
	OpActivate: {"JH", "account-activate", "激活"},
	OpLoss:     {"GS", "loss-report", "挂失"},
	OpUnfreeze: {"JG", "loss-unfreeze", "解挂失"},
	OpClose:    {"XH", "account-cancel", "注销"},
}

// Valid tells whether op is one of the six operations.
func (op AccountOp) Valid() bool { _, ok := opInfo[op]; return ok }

// FileCode is the two letters naming the operation's files (KH for 开户).
func (op AccountOp) FileCode() string { return opInfo[op].file }

// Flow is the monitor flow of the operation (account-open, loss-report, …),
// the name the console's overview places under its column.
func (op AccountOp) Flow() string { return opInfo[op].flow }

// Chinese is the operation's name for people (开户).
func (op AccountOp) Chinese() string { return opInfo[op].zh }

// Kind is the file kind of the operation's request files.
func (op AccountOp) Kind() Kind { return Kind("account-" + string(op)) }

func opOfKind(k Kind) (AccountOp, bool) {
	for op := range opInfo {
		if op.Kind() == k {
			return op, true
		}
	}
	return "", false
}

// OpOfFileName returns the operation of a request or result file named by
// FileNameFor (BOC_KH_2026120201.txt is an opening), false for others.
func OpOfFileName(name string) (AccountOp, bool) {
	for op, in := range opInfo {
		if containsCode(name, "_"+in.file+"_") {
			return op, true
		}
	}
	return "", false
}

func containsCode(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// Outcome classes of a result (the value column of the banks' account
// status code tables).
const (
	// OutcomeOK is a request the bank carried out.
	OutcomeOK = "ok"
	// OutcomeMismatch: the name does not match the ID number or account.
	OutcomeMismatch = "mismatch"
	// OutcomeIDInvalid: the ID check with the public-security register failed.
	OutcomeIDInvalid = "id_invalid"
	// OutcomeNotFound: no such account.
	OutcomeNotFound = "not_found"
	// OutcomeFrozen: the account is frozen.
	OutcomeFrozen = "frozen"
	// OutcomeClosed: the account is closed.
	OutcomeClosed = "closed"
	// OutcomeLost: the account is reported lost.
	OutcomeLost = "lost"
	// OutcomeNotLost: a release asked for an account that is not reported lost.
	OutcomeNotLost = "not_lost"
	// OutcomeDuplicate: the person already holds such an account.
	OutcomeDuplicate = "duplicate"
	// OutcomeOther is any other refusal.
	OutcomeOther = "other"
)

// AccountRequest is one account operation asked of a bank.
type AccountRequest struct {
	// Reference is the hub's unique request reference (results are matched by it).
	Reference string
	// Op is the operation.
	Op AccountOp
	// PersonID is the resident ID number (GB 11643).
	PersonID string
	// Name is the person's name.
	Name string
	// Account is the account; empty on an opening request.
	Account string
	// Division is the Shanghai division code, 310101-310151 (optional).
	Division string
}

// AccountResult is the bank's answer to one request.
type AccountResult struct {
	// Reference is the request's reference.
	Reference string
	// Op is the operation answered.
	Op AccountOp
	// Account is the account (the new one for an opening).
	Account string
	// Name and PersonID are echoed where the layout carries them.
	Name, PersonID string
	// Outcome is the class of the result (OutcomeOK, OutcomeMismatch, …).
	Outcome string
	// Code and Text are the bank's result code and text.
	Code, Text string
	// Date is the bank's processing date, zero if not given.
	Date time.Time
}

// OK tells whether the bank carried the request out.
func (r AccountResult) OK() bool { return r.Outcome == OutcomeOK }

// AccountHeader is what the hub puts in the header of an account file.
type AccountHeader struct {
	// BatchNo identifies the file for the bank (digits and capitals).
	BatchNo string
	// FileDate is the business date of the file.
	FileDate time.Time
	// Op is the file's operation.
	Op AccountOp
	// PayerName is the bureau's name at the bank.
	PayerName string
	// Count fills summary headers.
	Count int64
	// PartNo and PartTotal number the parts of a split result file.
	PartNo, PartTotal int64
}

// ErrAccountLayout: a bank has no account layouts.
var ErrAccountLayout = errors.New("no account layouts configured")

// AccountWriter writes account requests (or, for the simulators, results)
// in a bank's layout.
type AccountWriter struct {
	w   *mappings.Writer
	rec *mappings.Record
}

// NewAccountWriter starts a file of layout l on out, writing its header.
func NewAccountWriter(l *mappings.Layout, out io.Writer, h AccountHeader) (*AccountWriter, error) {
	w := mappings.NewWriter(l, out, mappings.WriterOptions{})
	if l.Header != nil {
		hr := mappings.NewRecord(l.Header)
		code, err := opCode(l.Header, h.Op)
		if err != nil {
			return nil, err
		}
		for _, f := range []struct {
			name string
			v    any
		}{{"batch_no", h.BatchNo}, {"file_date", h.FileDate.In(clock.Shanghai)}, {"op", code},
			{"payer_name", h.PayerName}, {"part_no", h.PartNo}, {"part_total", h.PartTotal}} {
			if l.Header.Index(f.name) >= 0 {
				if err := hr.Set(f.name, f.v); err != nil {
					return nil, fmt.Errorf("header %s: %w", f.name, err)
				}
			}
		}
		mappings.SetHeaderAggregates(hr, h.Count, 0)
		if err := w.Write(hr); err != nil {
			return nil, fmt.Errorf("header: %w", err)
		}
	}
	return &AccountWriter{w: w, rec: mappings.NewRecord(l.Detail)}, nil
}

// opCode is the file code of op in the op field of s.
func opCode(s *mappings.Schema, op AccountOp) (string, error) {
	i := s.Index("op")
	if i < 0 {
		return "", nil
	}
	f := &s.Fields[i]
	if f.Codes == nil {
		return string(op), nil
	}
	c, ok := f.Codes.CodeFor(string(op))
	if !ok {
		return "", fmt.Errorf("%w: no code for operation %q in %s", mappings.ErrField, op, f.Codes.Name)
	}
	return c, nil
}

// outcomeCode is the bank's code for a result in the status field of s:
// the result's own code when the table has it, else the table's first
// code of the outcome.
func outcomeCode(s *mappings.Schema, r *AccountResult) (string, error) {
	i := s.Index("status")
	if i < 0 {
		return "", nil
	}
	f := &s.Fields[i]
	if f.Codes == nil {
		return r.Outcome, nil
	}
	if e, ok := f.Codes.Lookup(r.Code); ok && e.Value == r.Outcome {
		return r.Code, nil
	}
	c, ok := f.Codes.CodeFor(r.Outcome)
	if !ok {
		return "", fmt.Errorf("%w: no code for outcome %q in %s", mappings.ErrField, r.Outcome, f.Codes.Name)
	}
	return c, nil
}

// set sets the named field when the schema has it.
func set(r *mappings.Record, name string, v any) error {
	if r.Schema().Index(name) < 0 {
		return nil
	}
	return r.Set(name, v)
}

// Write writes one request; an invalid one is refused with a
// *mappings.FieldError and not written.
func (aw *AccountWriter) Write(q *AccountRequest) error {
	aw.rec.Reset()
	code, err := opCode(aw.rec.Schema(), q.Op)
	if err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{{"reference", q.Reference}, {"op", code}, {"account", q.Account},
		{"name", q.Name}, {"person_id", q.PersonID}, {"division", q.Division}} {
		if err := set(aw.rec, f.name, f.v); err != nil {
			return err
		}
	}
	return aw.w.Write(aw.rec)
}

// WriteResult writes one result (the banks' side: the simulators).
func (aw *AccountWriter) WriteResult(r *AccountResult) error {
	aw.rec.Reset()
	s := aw.rec.Schema()
	code, err := opCode(s, r.Op)
	if err != nil {
		return err
	}
	status, err := outcomeCode(s, r)
	if err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{{"reference", r.Reference}, {"op", code}, {"account", r.Account},
		{"name", r.Name}, {"person_id", r.PersonID}, {"status", status}, {"reason_text", r.Text}} {
		if err := set(aw.rec, f.name, f.v); err != nil {
			return err
		}
	}
	if !r.Date.IsZero() {
		if err := set(aw.rec, "proc_date", r.Date.In(clock.Shanghai)); err != nil {
			return err
		}
	}
	return aw.w.Write(aw.rec)
}

// Count reports the details written.
func (aw *AccountWriter) Count() int64 { return aw.w.Count() }

// Close writes the trailer and flushes (it does not close the underlying writer).
func (aw *AccountWriter) Close() error { return aw.w.Close() }

// AccountRead tells what ReadAccountRequests or ReadAccountResults saw.
type AccountRead struct {
	// Op is the operation of the file's header (empty without a header op).
	Op AccountOp
	// BatchNo is the header's batch number, if any.
	BatchNo string
	// PartNo and PartTotal come from the header of a split file (0 when absent).
	PartNo, PartTotal int64
	// Summary is the reader's summary.
	Summary mappings.Summary
	// CheckErr is the trailer/summary check, nil when consistent.
	CheckErr error
	// Refused is the reader's verdict: nil when the file may be accepted,
	// else an error matching mappings.ErrRefused naming every reason.
	Refused error
}

// ReadAccountRequests streams the requests of a file of layout l to fn
// (the banks' side: the simulators). Malformed records go to onReject and
// are skipped; a record naming an operation other than the header's is
// rejected too.
func ReadAccountRequests(l *mappings.Layout, in io.Reader, onReject func(mappings.Reject), fn func(q *AccountRequest) error) (AccountRead, error) {
	return readAccounts(l, in, onReject, func(rec *mappings.Record, op AccountOp) error {
		q := AccountRequest{Reference: rec.Str("reference"), Op: op, PersonID: rec.Str("person_id"), Name: rec.Str("name"),
			Account: rec.Str("account"), Division: rec.Str("division")}
		return fn(&q)
	})
}

// ReadAccountResults streams the results of a file of layout l to fn.
// Malformed records (an unknown result code, a missing reference) go to
// onReject with their line numbers and are skipped; whether the file as a
// whole may be accepted is AccountRead.Refused. A read error (broken JSON
// or XML, bytes invalid in the charset) is returned.
func ReadAccountResults(l *mappings.Layout, in io.Reader, onReject func(mappings.Reject), fn func(r *AccountResult) error) (AccountRead, error) {
	si := l.Detail.Index("status")
	if si < 0 || l.Detail.Fields[si].Codes == nil {
		return AccountRead{}, fmt.Errorf("layout %s: %w: a result layout needs a status field with a code table", l.Name, ErrAccountLayout)
	}
	codes := l.Detail.Fields[si].Codes
	return readAccounts(l, in, onReject, func(rec *mappings.Record, op AccountOp) error {
		code := rec.Str("status")
		e, _ := codes.Lookup(code)
		text := rec.Str("reason_text")
		if text == "" {
			text = e.Text
		}
		r := AccountResult{Reference: rec.Str("reference"), Op: op, Account: rec.Str("account"), Name: rec.Str("name"),
			PersonID: rec.Str("person_id"), Outcome: e.Value, Code: code, Text: text}
		if t, ok := rec.Time("proc_date"); ok {
			r.Date = t
		}
		return fn(&r)
	})
}

func readAccounts(l *mappings.Layout, in io.Reader, onReject func(mappings.Reject), fn func(rec *mappings.Record, op AccountOp) error) (AccountRead, error) {
	var res AccountRead
	var rejects []mappings.Reject
	rd := mappings.NewReader(l, in, mappings.ReaderOptions{OnReject: func(r mappings.Reject) {
		if !r.Warning {
			rejects = append(rejects, r)
		}
	}})
	flush := func() {
		for _, r := range rejects {
			if onReject != nil {
				onReject(r)
			}
		}
		rejects = rejects[:0]
	}
	opOf := func(s *mappings.Schema, rec *mappings.Record) AccountOp {
		i := s.Index("op")
		if i < 0 || !rec.Values[i].Set {
			return ""
		}
		if f := &s.Fields[i]; f.Codes != nil {
			e, _ := f.Codes.Lookup(rec.Values[i].Str)
			return AccountOp(e.Value)
		}
		return AccountOp(rec.Values[i].Str)
	}
	for {
		rec, err := rd.Next()
		flush()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, err
		}
		switch rec.Kind {
		case mappings.KindHeader:
			res.Op = opOf(l.Header, rec)
			res.BatchNo = rec.Str("batch_no")
			if l.Header.Index("part_no") >= 0 {
				res.PartNo = rec.Int("part_no")
				res.PartTotal = rec.Int("part_total")
			}
		case mappings.KindDetail:
			op := opOf(l.Detail, rec)
			if op == "" {
				op = res.Op
			}
			if !op.Valid() || (res.Op != "" && op != res.Op) {
				if onReject != nil {
					onReject(mappings.Reject{Line: rec.Line, Kind: mappings.KindDetail, Field: "op", Problem: fmt.Sprintf("operation %q differs from the file's %q", op, res.Op)})
				}
				continue
			}
			if err := fn(rec, op); err != nil {
				return res, err
			}
		}
	}
	res.CheckErr = rd.Check()
	res.Refused = rd.Verdict()
	res.Summary = rd.Summary()
	return res, nil
}
