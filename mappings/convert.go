package mappings

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"sync"
	"sync/atomic"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
)

// ConvertOptions tune Mapping.Convert.
type ConvertOptions struct {
	// Params override the mapping's parameters.
	Params map[string]string
	// OnReject receives every rejected source record and every warning.
	// Raw holds the source record's bytes (only during the call).
	OnReject func(Reject)
	// Progress, if set, is called about every 64k records with the
	// number of input bytes and records read.
	Progress func(bytes, records int64)
	// ExpectedCount and ExpectedSumFen fill a target summary header's
	// aggregates when the input cannot be read twice.
	ExpectedCount, ExpectedSumFen int64
}

// ConvertResult summarises a conversion.
type ConvertResult struct {
	// Read is the source summary (counts, amount, header, trailer),
	// summed over the parts.
	Read Summary
	// Parts are the summaries of each input file.
	Parts []Summary
	// Written is the number of target details written.
	Written int64
	// Skipped is the number of details left out by the filter.
	Skipped int64
	// Rejected counts source records rejected while reading or writing.
	Rejected int64
	// WriteWarnings counts warnings of the target layout (a value
	// truncated at a character boundary, a Luhn failure).
	WriteWarnings int64
	// WrittenFen is the sum of the target canonical amount written.
	WrittenFen int64
	// CheckErr is the source trailer check (nil if it matched).
	CheckErr error
	// Refused is the verdict on the source (Reader.Verdict of each part,
	// and the completeness of a split return): nil when the file may be
	// accepted, else an error matching ErrRefused with every reason.
	Refused error
}

// countingReader counts bytes read.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Convert reads in with the source layout, maps every detail and writes
// out with the target layout. Malformed source records are rejected and
// counted, never fatal. If the target has a summary header whose totals
// are not given by the header rules, in is read twice when it is an
// io.Seeker, else ExpectedCount/ExpectedSumFen are used.
func (m *Mapping) Convert(ctx context.Context, in io.Reader, out io.Writer, opts ConvertOptions) (ConvertResult, error) {
	return m.ConvertParts(ctx, []io.Reader{in}, out, opts)
}

// ConvertParts is Convert for an input split over several files (a CCB
// return in parts): the parts are read in order into one output; each
// part's trailer is checked, and when the source header has part_no and
// part_total the parts must be complete. Reject.Part tells the parts apart.
func (m *Mapping) ConvertParts(ctx context.Context, parts []io.Reader, out io.Writer, opts ConvertOptions) (ConvertResult, error) {
	var res ConvertResult
	if len(parts) == 0 {
		return res, fmt.Errorf("mappings: %s: no input", m.Name)
	}
	params := maps.Clone(m.Params)
	if params == nil {
		params = map[string]string{}
	}
	maps.Copy(params, opts.Params)
	needTotals := m.Target.Header != nil && len(m.Target.Header.aggs) > 0
	if needTotals {
		if seeker, ok := parts[0].(io.Seeker); ok && len(parts) == 1 {
			count, sum, err := m.precount(ctx, parts[0], params)
			if err != nil {
				return res, err
			}
			if _, err := seeker.Seek(0, io.SeekStart); err != nil {
				return res, fmt.Errorf("mappings: rewind input: %w", err)
			}
			opts.ExpectedCount, opts.ExpectedSumFen = count, sum
		}
	}
	// Two stages on two goroutines: this one reads, validates and maps
	// into batches of target records; the writer goroutine validates,
	// encodes and writes them. Batches are recycled, so memory stays flat.
	var mu sync.Mutex
	report := func(r Reject) {
		if opts.OnReject != nil {
			mu.Lock()
			opts.OnReject(r)
			mu.Unlock()
		}
	}
	var writeLine int64 // source line of the record being written (writer goroutine)
	var writePart int
	var writeWarnings int64
	wr := NewWriter(m.Target, out, WriterOptions{OnWarning: func(r Reject) {
		r.Line, r.Part = writeLine, writePart // the source line is what an operator can find
		writeWarnings++
		report(r)
	}})
	free := make(chan *convBatch, convBatches)
	for range convBatches {
		free <- newConvBatch(m.Target.Detail)
	}
	full := make(chan *convBatch, convBatches)
	var (
		failed        atomic.Bool
		writeErr      error
		writeRejected int64
		done          = make(chan struct{})
	)
	go func() {
		defer close(done)
		for b := range full {
			if !failed.Load() {
				if err := writeBatch(wr, b, &writeLine, &writePart, &writeRejected, report); err != nil {
					writeErr = err
					failed.Store(true)
				}
			}
			free <- b
		}
	}()
	var rds []*Reader
	var bytesRead int64
	err := m.mapAll(ctx, parts, &rds, &bytesRead, params, opts, report, free, full, &failed, &res)
	close(full)
	<-done
	if err == nil && writeErr != nil {
		err = fmt.Errorf("mappings: %s: write: %w", m.Name, writeErr)
	}
	if err != nil {
		return res, err
	}
	cerr := wr.Close()
	var checks, verdicts []error
	var rparts []ReturnPart
	for i, rd := range rds {
		s := rd.Summary()
		res.Parts = append(res.Parts, s)
		res.Read.Records += s.Records
		res.Read.Details += s.Details
		res.Read.Rejected += s.Rejected
		res.Read.Warnings += s.Warnings
		res.Read.DetailLines += s.DetailLines
		res.Read.AmountFen += s.AmountFen
		if i == 0 {
			res.Read.Header = s.Header
		}
		res.Read.Trailer = s.Trailer
		if err := rd.Check(); err != nil {
			if len(rds) > 1 {
				err = fmt.Errorf("part %d: %w", i+1, err)
			}
			checks = append(checks, err)
		}
		if err := rd.Verdict(); err != nil {
			if len(rds) > 1 {
				err = fmt.Errorf("part %d: %w", i+1, err)
			}
			verdicts = append(verdicts, err)
		}
		if s.Header != nil {
			rparts = append(rparts, ReturnPart{Index: i, PartNo: s.Header.Int("part_no"), PartTotal: s.Header.Int("part_total")})
		}
	}
	if h := m.Source.Header; h != nil && h.Index("part_no") >= 0 && h.Index("part_total") >= 0 && len(rparts) == len(rds) {
		cp := checkParts(rparts)
		checks = append(checks, cp...)
		verdicts = append(verdicts, cp...)
	}
	res.CheckErr = errors.Join(checks...)
	res.Refused = Refusal(verdicts...)
	res.Rejected += res.Read.Rejected + writeRejected
	res.WriteWarnings = writeWarnings
	res.Written = wr.Count()
	res.WrittenFen = wr.Sum()
	if opts.Progress != nil {
		opts.Progress(bytesRead, res.Read.Records)
	}
	if cerr != nil {
		return res, fmt.Errorf("mappings: %s: %w", m.Name, cerr)
	}
	return res, nil
}

// convBatches batches of convBatchSize records circulate between the
// stages of Convert.
const (
	convBatches   = 4
	convBatchSize = 512
)

// convBatch is a batch of mapped target records with their source lines.
type convBatch struct {
	header *Record
	recs   []*Record
	lines  []int64
	parts  []int
	rawEnd []int // end offsets of each record's raw bytes in slab
	slab   []byte
	n      int
}

func newConvBatch(s *Schema) *convBatch {
	b := &convBatch{recs: make([]*Record, convBatchSize), lines: make([]int64, convBatchSize),
		parts: make([]int, convBatchSize), rawEnd: make([]int, convBatchSize)}
	for i := range b.recs {
		b.recs[i] = NewRecord(s)
	}
	return b
}

func (b *convBatch) raw(i int) []byte {
	start := 0
	if i > 0 {
		start = b.rawEnd[i-1]
	}
	return b.slab[start:b.rawEnd[i]]
}

// writeBatch writes a batch; records the writer refuses are reported as
// rejects. Only I/O errors are returned.
func writeBatch(wr *Writer, b *convBatch, line *int64, part *int, rejected *int64, report func(Reject)) error {
	if b.header != nil {
		if err := wr.Write(b.header); err != nil {
			return err
		}
	}
	for i := 0; i < b.n; i++ {
		*line, *part = b.lines[i], b.parts[i]
		if err := wr.Write(b.recs[i]); err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				return err
			}
			*rejected++
			r := Reject{Line: b.lines[i], Part: b.parts[i], Kind: KindDetail, Field: fe.Field, Excerpt: fe.Excerpt, Problem: fe.Err.Error(), Raw: b.raw(i)}
			report(r)
		}
	}
	return nil
}

// mapAll is the reading stage of Convert.
func (m *Mapping) mapAll(ctx context.Context, parts []io.Reader, rds *[]*Reader, bytesRead *int64, params map[string]string, opts ConvertOptions, report func(Reject),
	free <-chan *convBatch, full chan<- *convBatch, failed *atomic.Bool, res *ConvertResult) error {
	var env map[string]any
	if needsEnv(m.detail) || m.filter != nil {
		env = map[string]any{"params": params}
	}
	b := <-free
	b.header, b.n, b.slab = nil, 0, b.slab[:0]
	headerDone := m.Target.Header == nil
	header := func(src *Record) error {
		headerDone = true
		h, err := m.buildHeader(src, params, opts)
		b.header = h
		return err
	}
	var n int64
	var base int64 // bytes of the parts already read
	for pi, in := range parts {
		partNo := 0
		if len(parts) > 1 {
			partNo = pi + 1
		}
		cr := &countingReader{r: in}
		rd := NewReader(m.Source, cr, ReaderOptions{OnReject: report, Part: partNo})
		*rds = append(*rds, rd)
		for ; ; n++ {
			if n&0xFFFF == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
				if opts.Progress != nil && n > 0 {
					opts.Progress(base+cr.n, n)
				}
			}
			rec, err := rd.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("mappings: %s: read: %w", m.Name, err)
			}
			switch rec.Kind {
			case KindHeader:
				if !headerDone {
					if err := header(rec); err != nil {
						return err
					}
				}
				continue
			case KindTrailer:
				continue
			}
			if !headerDone {
				if err := header(nil); err != nil {
					return err
				}
			}
			if env != nil {
				fillEnvFields(env, rec, m.envFields)
			}
			if m.filter != nil {
				ok, err := runBool(m.filter, env)
				if err != nil {
					return fmt.Errorf("mappings: %s: filter: %w", m.Name, err)
				}
				if !ok {
					res.Skipped++
					continue
				}
			}
			dst := b.recs[b.n]
			dst.Reset()
			if err := applyRules(m.detail, rec, dst, env); err != nil {
				res.Rejected++
				reportWriteReject(report, rec, partNo, rd.Raw(), err)
				continue
			}
			b.lines[b.n] = rec.Line
			b.parts[b.n] = partNo
			b.slab = append(b.slab, rd.Raw()...)
			b.rawEnd[b.n] = len(b.slab)
			b.n++
			if b.n == convBatchSize {
				full <- b
				if failed.Load() {
					return nil
				}
				b = <-free
				b.header, b.n, b.slab = nil, 0, b.slab[:0]
			}
		}
		base += cr.n
		*bytesRead = base
	}
	if !headerDone {
		if err := header(nil); err != nil {
			return err
		}
	}
	full <- b
	return nil
}

// buildHeader fills the target header from the rules, the source header
// and the expected totals.
func (m *Mapping) buildHeader(src *Record, params map[string]string, opts ConvertOptions) (*Record, error) {
	h := NewRecord(m.Target.Header)
	henv := map[string]any{"params": params}
	if src != nil {
		fillEnv(henv, src)
	}
	if err := applyRules(m.header, src, h, henv); err != nil {
		return nil, fmt.Errorf("mappings: %s: header: %w", m.Name, err)
	}
	for _, ai := range h.schema.aggs {
		if !h.Values[ai].Set {
			SetHeaderAggregates(h, opts.ExpectedCount, opts.ExpectedSumFen)
			break
		}
	}
	return h, nil
}

func reportWriteReject(on func(Reject), rec *Record, part int, raw []byte, err error) {
	if on == nil {
		return
	}
	r := Reject{Line: rec.Line, Part: part, Kind: rec.Kind, Problem: err.Error(), Raw: raw}
	var fe *FieldError
	if errors.As(err, &fe) {
		r.Field, r.Excerpt, r.Problem = fe.Field, fe.Excerpt, fe.Err.Error()
	}
	on(r)
}

// precount reads in once to count the details the mapping would write and
// sum their source canonical amount.
func (m *Mapping) precount(ctx context.Context, in io.Reader, params map[string]string) (int64, int64, error) {
	rd := NewReader(m.Source, in, ReaderOptions{})
	var env map[string]any
	if m.filter != nil {
		env = map[string]any{"params": params}
	}
	amt := m.Source.Detail.CanonicalIndex(CanonAmount)
	var count, sum int64
	for n := 0; ; n++ {
		if n&0xFFFF == 0 {
			if err := ctx.Err(); err != nil {
				return 0, 0, err
			}
		}
		rec, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return count, sum, nil
		}
		if err != nil {
			return 0, 0, fmt.Errorf("mappings: %s: pre-count: %w", m.Name, err)
		}
		if rec.Kind != KindDetail {
			continue
		}
		if m.filter != nil {
			fillEnv(env, rec)
			if ok, err := runBool(m.filter, env); err != nil || !ok {
				continue
			}
		}
		count++
		if amt >= 0 {
			sum += rec.Values[amt].Int
		}
	}
}

func needsEnv(rules []rule) bool {
	for _, r := range rules {
		if r.prog != nil || r.when != nil {
			return true
		}
	}
	return false
}

func runBool(p *vm.Program, env map[string]any) (bool, error) {
	out, err := expr.Run(p, env)
	if err != nil {
		return false, err
	}
	b, _ := out.(bool)
	return b, nil
}
