package bank

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/mappings"
)

// FileSet holds the compiled layouts of a bank's file kinds.
type FileSet struct {
	// Disbursement, Return, Deduction and DeductionReturn are nil when not configured.
	Disbursement, Return, Deduction, DeductionReturn *mappings.Layout
	// Account and AccountReturn are the account-operation request and
	// result layouts, nil when not configured.
	Account, AccountReturn *mappings.Layout
}

// Outbound returns the layout of the files the hub sends for kind.
func (f FileSet) Outbound(k Kind) *mappings.Layout {
	if k == Deduction {
		return f.Deduction
	}
	return f.Disbursement
}

// Inbound returns the layout of the bank's returns for kind.
func (f FileSet) Inbound(k Kind) *mappings.Layout {
	if k == Deduction {
		return f.DeductionReturn
	}
	return f.Return
}

// Ext returns the file extension matching a layout's format.
func Ext(l *mappings.Layout) string {
	switch l.Format {
	case mappings.FormatJSON:
		return ".json"
	case mappings.FormatXML:
		return ".xml"
	}
	if l.Name != "" && len(l.Name) > 3 && l.Name[:3] == "cmb" {
		return ".csv"
	}
	return ".txt"
}

// LoadFileSet compiles the layouts named in ls from the mappings root fsys
// (the directory holding banks/ and codetables/).
func LoadFileSet(fsys fs.FS, ls Layouts) (FileSet, error) {
	ld := mappings.NewLoader(fsys)
	var fsOut FileSet
	var errs []error
	for _, x := range []struct {
		name string
		dst  **mappings.Layout
	}{{ls.Disbursement, &fsOut.Disbursement}, {ls.Return, &fsOut.Return}, {ls.Deduction, &fsOut.Deduction}, {ls.DeductionReturn, &fsOut.DeductionReturn},
		{ls.Account, &fsOut.Account}, {ls.AccountReturn, &fsOut.AccountReturn}} {
		if x.name == "" {
			continue
		}
		l, err := ld.Layout(x.name)
		if err != nil {
			errs = append(errs, fmt.Errorf("layout %s: %w", x.name, err))
			continue
		}
		*x.dst = l
	}
	return fsOut, errors.Join(errs...)
}

// Header is what the hub puts in the header of a file (fields the layout
// does not have are skipped).
type Header struct {
	// BatchNo identifies the batch for the bank (digits and capitals).
	BatchNo string
	// FileDate is the business date of the file.
	FileDate time.Time
	// PayerAccount and PayerName are the bureau's account at the bank.
	PayerAccount, PayerName string
	// Count and TotalFen fill summary headers.
	Count, TotalFen int64
	// PartNo and PartTotal number the parts of a split file (CCB returns).
	PartNo, PartTotal int64
}

// FileWriter writes canonical payment records in a bank's layout.
type FileWriter struct {
	w   *mappings.Writer
	rec *mappings.Record
}

// NewFileWriter starts a file of layout l on out, writing its header.
func NewFileWriter(l *mappings.Layout, out io.Writer, h Header) (*FileWriter, error) {
	w := mappings.NewWriter(l, out, mappings.WriterOptions{})
	if l.Header != nil {
		hr := mappings.NewRecord(l.Header)
		for _, f := range []struct {
			name string
			v    any
		}{{"batch_no", h.BatchNo}, {"file_date", h.FileDate.In(clock.Shanghai)}, {"payer_account", h.PayerAccount},
			{"payer_name", h.PayerName}, {"part_no", h.PartNo}, {"part_total", h.PartTotal}} {
			if l.Header.Index(f.name) >= 0 {
				if err := hr.Set(f.name, f.v); err != nil {
					return nil, fmt.Errorf("header %s: %w", f.name, err)
				}
			}
		}
		mappings.SetHeaderAggregates(hr, h.Count, h.TotalFen)
		if err := w.Write(hr); err != nil {
			return nil, fmt.Errorf("header: %w", err)
		}
	}
	return &FileWriter{w: w, rec: mappings.NewRecord(l.Detail)}, nil
}

// Write writes one payment; an invalid record is refused with a
// *mappings.FieldError and not written.
func (fw *FileWriter) Write(p *mappings.PaymentRecord) error {
	fw.rec.Reset()
	if err := p.ToRecord(fw.rec); err != nil {
		return err
	}
	return fw.w.Write(fw.rec)
}

// Count and Sum report the details written.
func (fw *FileWriter) Count() int64 { return fw.w.Count() }

// Sum is the total in fen of the details written.
func (fw *FileWriter) Sum() int64 { return fw.w.Sum() }

// Close writes the trailer and flushes (it does not close the underlying writer).
func (fw *FileWriter) Close() error { return fw.w.Close() }

// ReadResult tells what ReadPayments saw.
type ReadResult struct {
	// Summary is the reader's summary (header and trailer included).
	Summary mappings.Summary
	// PartNo and PartTotal come from the header of a split file (0 when absent).
	PartNo, PartTotal int64
	// CheckErr is the trailer/summary check (count and total against the details), nil when consistent.
	CheckErr error
	// Refused is the reader's verdict (mappings.Reader.Verdict): nil when
	// the file may be accepted, else an error matching mappings.ErrRefused
	// naming every reason (empty, truncated, count or total, charset).
	Refused error
}

// ReadPayments streams the details of a file of layout l to fn. Malformed
// records go to onReject (with line numbers) and are skipped; whether the
// file as a whole may be accepted is ReadResult.Refused. A read error
// (broken JSON or XML, bytes invalid in the charset of one) is returned.
func ReadPayments(l *mappings.Layout, in io.Reader, onReject func(mappings.Reject), fn func(p *mappings.PaymentRecord) error) (ReadResult, error) {
	rd := mappings.NewReader(l, in, mappings.ReaderOptions{OnReject: func(r mappings.Reject) {
		if !r.Warning && onReject != nil {
			onReject(r)
		}
	}})
	var res ReadResult
	for {
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, err
		}
		switch rec.Kind {
		case mappings.KindHeader:
			if l.Header.Index("part_no") >= 0 {
				res.PartNo = rec.Int("part_no")
				res.PartTotal = rec.Int("part_total")
			}
		case mappings.KindDetail:
			p := mappings.PaymentFromRecord(rec)
			if err := fn(&p); err != nil {
				return res, err
			}
		}
	}
	res.CheckErr = rd.Check()
	res.Refused = rd.Verdict()
	res.Summary = rd.Summary()
	return res, nil
}
