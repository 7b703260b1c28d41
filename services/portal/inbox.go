package portal

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emmansun/gmsm/sm3"
	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/shanghai-mca/mzhub/connectors/joblib"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security/mask"
)

// Register statuses.
const (
	statusNormal    = "normal"
	statusDeceased  = "deceased"
	statusMovedOut  = "moved_out"
	statusSuspended = "suspended"
)

// EligibleHeader is the header of a register file.
const EligibleHeader = "id_number,name,division,status,hukou,disability_grade,household_size,monthly_income_fen,assistance_type"

// StatusHeader is the header of a status file.
const StatusHeader = "application_id,node,result,reason,certificate_ref,at"

// EligibleRecord is one line of a register file.
type EligibleRecord struct {
	// IDNumber is the resident ID number.
	IDNumber string
	// Name is the person's name.
	Name string
	// Division is the district's division code.
	Division string
	// Status is normal, deceased, moved_out or suspended.
	Status string
	// Attrs are the qualification attributes (age is read from IDNumber).
	Attrs Qualification
}

// LineError is a refused line of a file: its number (1 is the header) and why.
type LineError struct {
	// Line is the line number.
	Line int64
	// Reason says what is wrong (masked).
	Reason string
	// Ref is the record's own reference when it has one (the application
	// id of a status line), kept whole: the reason's masking may hide it.
	Ref string
}

var divisionRE = regexp.MustCompile(`^3101[0-9]{2}$`)

// readCSV decodes a business-system file: UTF-8 (a BOM is dropped), or
// GB18030 when it is not valid UTF-8.
func readCSV(data []byte, header string) (*csv.Reader, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(data) {
		d, err := simplifiedchinese.GB18030.NewDecoder().Bytes(data)
		if err != nil {
			return nil, fmt.Errorf("%w: neither UTF-8 nor GB18030: %v", ErrBadRecord, err)
		}
		data = d
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	h, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%w: line 1: %v", ErrBadRecord, err)
	}
	if strings.Join(h, ",") != header {
		return nil, fmt.Errorf("%w: line 1: header %q, want %q", ErrBadRecord, clipText(strings.Join(h, ","), 120), header)
	}
	return r, nil
}

func clipText(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "…"
	}
	return mask.Text(s)
}

// ParseEligible reads a register file and calls fn for each valid line;
// invalid lines are returned with their numbers and never reach fn. A file
// whose header is wrong is refused whole (an error wrapping ErrBadRecord).
func ParseEligible(data []byte, fn func(line int64, r EligibleRecord) error) ([]LineError, error) {
	r, err := readCSV(data, EligibleHeader)
	if err != nil {
		return nil, err
	}
	var bad []LineError
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return bad, nil
		}
		if err != nil {
			bad = append(bad, LineError{Line: errLine(err), Reason: clipText(err.Error(), 200)})
			if !recoverable(err) {
				return bad, nil
			}
			continue
		}
		line, _ := r.FieldPos(0)
		e, reason := eligibleRecord(rec)
		if reason != "" {
			bad = append(bad, LineError{Line: int64(line), Reason: reason})
			continue
		}
		if err := fn(int64(line), e); err != nil {
			return bad, err
		}
	}
}

func eligibleRecord(rec []string) (EligibleRecord, string) {
	if len(rec) != 9 {
		return EligibleRecord{}, fmt.Sprintf("%d fields, want 9", len(rec))
	}
	for i := range rec {
		rec[i] = strings.TrimSpace(rec[i])
	}
	e := EligibleRecord{IDNumber: strings.ToUpper(rec[0]), Name: rec[1], Division: rec[2], Status: rec[3]}
	if !mask.ValidID(e.IDNumber) {
		return e, "id_number " + mask.IDNumber(e.IDNumber) + " is not a valid resident ID number"
	}
	if e.Name == "" || utf8.RuneCountInString(e.Name) > 32 {
		return e, "name: want 1-32 characters"
	}
	if !divisionRE.MatchString(e.Division) {
		return e, fmt.Sprintf("division %q is not a Shanghai district code", clipText(e.Division, 20))
	}
	switch e.Status {
	case statusNormal, statusDeceased, statusMovedOut, statusSuspended:
	default:
		return e, fmt.Sprintf("status %q: want normal, deceased, moved_out or suspended", clipText(e.Status, 20))
	}
	switch rec[4] {
	case "shanghai", "other":
		e.Attrs.Hukou = rec[4]
	default:
		return e, fmt.Sprintf("hukou %q: want shanghai or other", clipText(rec[4], 20))
	}
	ints := []struct {
		name string
		v    string
		max  int64
		dst  func(int64)
	}{
		{"disability_grade", rec[5], 4, func(v int64) { e.Attrs.DisabilityGrade = int(v) }},
		{"household_size", rec[6], 50, func(v int64) { e.Attrs.HouseholdSize = int(v) }},
		{"monthly_income_fen", rec[7], 1e10, func(v int64) { e.Attrs.MonthlyIncomeFen = v }},
	}
	for _, f := range ints {
		if f.v == "" {
			continue
		}
		v, err := strconv.ParseInt(f.v, 10, 64)
		if err != nil || v < 0 || v > f.max {
			return e, fmt.Sprintf("%s %q: want a whole number 0..%d", f.name, clipText(f.v, 20), f.max)
		}
		f.dst(v)
	}
	switch rec[8] {
	case "", "dibao", "tekun", "dibian":
		e.Attrs.AssistanceType = rec[8]
	default:
		return e, fmt.Sprintf("assistance_type %q: want dibao, tekun, dibian or empty", clipText(rec[8], 20))
	}
	return e, ""
}

// ParseStatus reads a status file like ParseEligible; each valid line is a
// Report (whether it fits its application is checked when applied).
func ParseStatus(data []byte, fn func(line int64, r Report) error) ([]LineError, error) {
	r, err := readCSV(data, StatusHeader)
	if err != nil {
		return nil, err
	}
	var bad []LineError
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return bad, nil
		}
		if err != nil {
			bad = append(bad, LineError{Line: errLine(err), Reason: clipText(err.Error(), 200)})
			if !recoverable(err) {
				return bad, nil
			}
			continue
		}
		line, _ := r.FieldPos(0)
		if len(rec) != 6 {
			bad = append(bad, LineError{Line: int64(line), Reason: fmt.Sprintf("%d fields, want 6", len(rec))})
			continue
		}
		rp := Report{ApplicationID: strings.TrimSpace(rec[0]), Node: strings.TrimSpace(rec[1]), Result: strings.TrimSpace(rec[2]),
			Reason: strings.TrimSpace(rec[3]), CertificateRef: strings.TrimSpace(rec[4])}
		if at := strings.TrimSpace(rec[5]); at != "" {
			t, err := time.Parse(time.RFC3339, at)
			if err != nil {
				bad = append(bad, LineError{Line: int64(line), Reason: fmt.Sprintf("at %q: want RFC 3339 time", clipText(at, 40))})
				continue
			}
			rp.At = t
		}
		if rp.Node == joblib.NodePreReview {
			bad = append(bad, LineError{Line: int64(line), Reason: "预审 (prereview) is the hub's node"})
			continue
		}
		n := joblib.Node{ApplicationID: rp.ApplicationID, Seq: joblib.NodeSeq(rp.Node), Node: rp.Node, Result: rp.Result, Reason: rp.Reason,
			CertificateRef: rp.CertificateRef, Dept: "x", At: time.Unix(1, 0)}
		if err := n.Validate(); err != nil {
			bad = append(bad, LineError{Line: int64(line), Reason: err.Error()})
			continue
		}
		if err := fn(int64(line), rp); err != nil {
			return bad, err
		}
	}
}

// errLine is the line of a CSV read error (0 when unknown).
func errLine(err error) int64 {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return int64(pe.Line)
	}
	return 0
}

// recoverable reports whether reading can go on after err (a malformed
// record; not an I/O error).
func recoverable(err error) bool {
	var pe *csv.ParseError
	return errors.As(err, &pe) && !errors.Is(pe.Err, csv.ErrQuote)
}

var eligibleName = regexp.MustCompile(`^eligible-([A-Z][A-Z0-9-]{1,31})-(20[0-9]{2}-(?:0[1-9]|1[0-2]))\.csv$`)
var statusName = regexp.MustCompile(`^status-[A-Za-z0-9._-]{1,80}\.csv$`)

// scanInbox takes the files in the inbox, in name order: each is applied
// in one transaction with its claim (name and SM3 digest), so a file is
// taken once, and moved to processed/ (or failed/ when refused whole).
func (s *Service) scanInbox(ctx context.Context) error {
	if s.cfg.Inbox == "" {
		return nil
	}
	entries, err := os.ReadDir(s.cfg.Inbox)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("portal: inbox: %w", err)
	}
	names := []string{}
	for _, e := range entries {
		if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".csv") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		if ctx.Err() != nil {
			break
		}
		if err := s.takeFile(ctx, name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// TakeFile applies one file of the inbox (exported for the CLI and tests).
func (s *Service) takeFile(ctx context.Context, name string) error {
	path := filepath.Join(s.cfg.Inbox, name)
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("portal: inbox %s: %w", name, err)
	}
	sum := sm3.Sum(data)
	digest := hex.EncodeToString(sum[:])
	start := s.now()
	var good int64
	var bad []LineError
	var whole error
	var answered int // applications that waited for this register
	err = s.db.InTx(ctx, func(tx *sql.Tx) error {
		good, bad, whole, answered = 0, nil, nil, 0
		var n int
		if err := tx.QueryRowContext(ctx, s.db.Rebind(`SELECT COUNT(*) FROM portal_inbox WHERE name = ? AND digest = ?`), name, digest).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return errTaken
		}
		var perr error
		switch m := eligibleName.FindStringSubmatch(name); {
		case m != nil:
			if _, ok := s.items[m[1]]; !ok {
				whole = fmt.Errorf("%w: %s", ErrUnknownItem, m[1])
				break
			}
			bad, perr = s.applyEligible(ctx, tx, data, m[1], m[2], &good)
			if it := s.items[m[1]]; perr == nil && it.Answer == AnswerRegister {
				answered, perr = s.answerHeld(ctx, tx, it)
			}
		case paidName.MatchString(name):
			m := paidName.FindStringSubmatch(name)
			if it, ok := s.items[m[1]]; !ok || it.Payout != PayoutPaidFile {
				whole = fmt.Errorf("%w: %s is not an item paid by paid files (payout paid_file)", ErrUnknownItem, m[1])
				break
			}
			bad, perr = s.applyPaid(ctx, tx, name, data, m[1], m[2], &good)
		case statusName.MatchString(name):
			var unfit []LineError
			bad, perr = ParseStatus(data, func(line int64, r Report) error {
				err := s.advance(ctx, tx, r)
				switch {
				case errors.Is(err, ErrUnknownApplication), errors.Is(err, ErrNodeOrder), errors.Is(err, ErrBadRecord):
					unfit = append(unfit, LineError{Line: line, Reason: mask.Text(err.Error()), Ref: r.ApplicationID})
					return nil
				case err != nil:
					return err
				}
				good++
				return nil
			})
			bad = append(bad, unfit...)
			sort.Slice(bad, func(i, j int) bool { return bad[i].Line < bad[j].Line })
		default:
			whole = fmt.Errorf("%w: %s is none of eligible-<ITEM>-<YYYY-MM>.csv, paid-<ITEM>-<YYYY-MM>.csv and status-<name>.csv", ErrBadRecord, name)
		}
		if errors.Is(perr, ErrBadRecord) {
			whole, perr = perr, nil
		}
		if perr != nil {
			return perr
		}
		for _, b := range bad {
			if err := s.refuse(ctx, tx, "inbox:"+name, b.Ref, b.Line, b.Reason); err != nil {
				return err
			}
		}
		if whole != nil {
			good = 0
			if err := s.refuse(ctx, tx, "inbox:"+name, "", 0, mask.Text(whole.Error())); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, s.db.Rebind(`INSERT INTO portal_inbox (name, digest, records, refused, taken_at) VALUES (?, ?, ?, ?, ?)`),
			name, digest, good, int64(len(bad)), s.now().UnixMilli())
		return err
	})
	if err != nil && !errors.Is(err, errTaken) {
		return fmt.Errorf("portal: inbox %s: %w", name, err)
	}
	dest := "processed"
	if whole != nil {
		dest = "failed"
	}
	if err := os.MkdirAll(filepath.Join(s.cfg.Inbox, dest), 0o700); err == nil {
		if err := os.Rename(path, filepath.Join(s.cfg.Inbox, dest, name)); err != nil {
			s.log.Warn("portal: inbox: move", "file", name, "err", err)
		}
	}
	if errors.Is(err, errTaken) {
		return nil
	}
	ev := monitor.Event{Partner: PartnerBusiness, Flow: FlowInbox, Direction: monitor.Inbound, Type: monitor.Received, Status: monitor.OK,
		ExchangeID: "inbox:" + name + ":" + digest[:16], FileName: name, Digest: digest, Bytes: int64(len(data)),
		Records: good, RecordsFailed: int64(len(bad)), Duration: s.now().Sub(start)}
	if len(bad) > 0 {
		ev.Status = monitor.Warning
		ev.ErrorMessage = fmt.Sprintf("%d lines refused; first: line %d: %s", len(bad), bad[0].Line, bad[0].Reason)
	}
	if whole != nil {
		ev.Type, ev.Status, ev.ErrorClass, ev.ErrorMessage = monitor.Rejected, monitor.Error, "format", mask.Text(whole.Error())
	}
	s.emit(ev)
	if answered > 0 {
		// Meets the monitor's expectation of the register (expectRegister).
		s.emit(monitor.Event{Partner: PartnerBusiness, Flow: FlowInbox, Direction: monitor.Internal, Type: monitor.Reconciled, Status: monitor.OK,
			ExchangeID: ev.ExchangeID + ":waiting", FileName: name, Digest: digest, Records: int64(answered)})
	}
	s.log.Info("portal: inbox file taken", "file", name, "records", good, "refused", len(bad), "refused_whole", whole != nil)
	return nil
}

var errTaken = errors.New("portal: file taken before")

func (s *Service) applyEligible(ctx context.Context, tx *sql.Tx, data []byte, item, month string, good *int64) ([]LineError, error) {
	up, err := tx.PrepareContext(ctx, s.db.Rebind(`INSERT INTO portal_eligible (item_code, person_key, person_sealed, name_sealed, person_ref,
		division, status, attrs, month, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (item_code, person_key) DO UPDATE SET status = excluded.status, attrs = excluded.attrs, division = excluded.division,
		name_sealed = excluded.name_sealed, updated_at = excluded.updated_at`))
	if err != nil {
		return nil, err
	}
	defer up.Close()
	now := s.now().UnixMilli()
	return ParseEligible(data, func(_ int64, e EligibleRecord) error {
		key, sealed, err := s.person(e.IDNumber)
		if err != nil {
			return err
		}
		name, err := s.d.Fields.Encrypt(e.Name)
		if err != nil {
			return err
		}
		attrs, err := json.Marshal(e.Attrs)
		if err != nil {
			return err
		}
		ref := sm3.Sum([]byte("portal-person-ref:" + item + ":" + key))
		if _, err := up.ExecContext(ctx, item, key, sealed, name, "P"+strings.ToUpper(hex.EncodeToString(ref[:10])), e.Division, e.Status, string(attrs), month, now); err != nil {
			return err
		}
		*good++
		return nil
	})
}

// WriteEligible writes a register file (the demo's and the tests' business system).
func WriteEligible(w io.Writer, recs []EligibleRecord) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, EligibleHeader)
	cw := csv.NewWriter(bw)
	for _, e := range recs {
		opt := func(v int64) string {
			if v == 0 {
				return ""
			}
			return strconv.FormatInt(v, 10)
		}
		if err := cw.Write([]string{e.IDNumber, e.Name, e.Division, e.Status, e.Attrs.Hukou, opt(int64(e.Attrs.DisabilityGrade)),
			opt(int64(e.Attrs.HouseholdSize)), opt(e.Attrs.MonthlyIncomeFen), e.Attrs.AssistanceType}); err != nil {
			return err
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return bw.Flush()
}

// NewEligible returns a register record (the demo's and the tests' business system).
func NewEligible(id, name, division, hukou string, disabilityGrade int, assistance string) EligibleRecord {
	return EligibleRecord{IDNumber: id, Name: name, Division: division, Status: statusNormal,
		Attrs: Qualification{Hukou: hukou, DisabilityGrade: disabilityGrade, AssistanceType: assistance}}
}

// WriteStatus writes a status file of lines (application_id, node, result,
// reason, certificate_ref, at) (the demo's and the tests' business system).
func WriteStatus(w io.Writer, lines [][]string) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, StatusHeader)
	cw := csv.NewWriter(bw)
	if err := cw.WriteAll(lines); err != nil {
		return err
	}
	return bw.Flush()
}
