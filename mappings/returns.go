package mappings

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
)

// ReturnPart summarises one file of a return file set.
type ReturnPart struct {
	// Index is the position of the file in the parts given.
	Index int
	// PartNo and PartTotal are the header's part_no and part_total (0
	// when the layout has none).
	PartNo, PartTotal int64
	// Summary is the reader's summary of the file.
	Summary Summary
	// CheckErr is the file's own trailer check.
	CheckErr error
}

// ReadReturns reads a return that may be split over several files (CCB
// splits large returns; each part has its own header and summary) and
// calls fn for every returned payment, in file order. seq numbers the
// payments from 0 across all parts: with layout match line it is the
// position of the sent record; with match reference (CCB) the order means
// nothing and the caller must match on Reference.
//
// Every part's trailer is checked. When the header has part_no and
// part_total fields, the parts must be exactly 1..part_total. Malformed
// records go to opts.OnReject as usual. The returned error joins every
// part's Verdict and the set-level problems (ErrTrailerMismatch,
// ErrCharset, ErrIncompleteReturn); nil means the set can be accepted. fn's error stops the reading and is returned.
func ReadReturns(ctx context.Context, l *Layout, parts []io.Reader, opts ReaderOptions, fn func(seq int64, p PaymentRecord) error) ([]ReturnPart, error) {
	out := make([]ReturnPart, 0, len(parts))
	var seq int64
	var problems []error
	for i, in := range parts {
		rd := NewReader(l, in, opts)
		part := ReturnPart{Index: i}
		for n := 0; ; n++ {
			if n&0xFFF == 0 {
				if err := ctx.Err(); err != nil {
					return out, err
				}
			}
			rec, err := rd.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return out, fmt.Errorf("mappings: return part %d: %w", i+1, err)
			}
			switch rec.Kind {
			case KindHeader:
				part.PartNo, part.PartTotal = rec.Int("part_no"), rec.Int("part_total")
			case KindDetail:
				if err := fn(seq, PaymentFromRecord(rec)); err != nil {
					return out, err
				}
				seq++
			}
		}
		part.Summary = rd.Summary()
		part.CheckErr = rd.Check()
		if v := rd.Verdict(); v != nil {
			problems = append(problems, fmt.Errorf("part %d: %w", i+1, v))
		}
		out = append(out, part)
	}
	if l.Header != nil && l.Header.Index("part_no") >= 0 && l.Header.Index("part_total") >= 0 {
		problems = append(problems, checkParts(out)...)
	}
	return out, errors.Join(problems...)
}

func checkParts(parts []ReturnPart) []error {
	if len(parts) == 0 {
		return []error{fmt.Errorf("%w: no parts", ErrIncompleteReturn)}
	}
	var errs []error
	total := parts[0].PartTotal
	nos := make([]int64, 0, len(parts))
	for _, p := range parts {
		if p.PartTotal != total {
			errs = append(errs, fmt.Errorf("%w: file %d says %d parts, file 1 says %d", ErrIncompleteReturn, p.Index+1, p.PartTotal, total))
		}
		nos = append(nos, p.PartNo)
	}
	sort.Slice(nos, func(i, j int) bool { return nos[i] < nos[j] })
	for i, no := range nos {
		if no != int64(i+1) {
			errs = append(errs, fmt.Errorf("%w: parts %v, want 1..%d", ErrIncompleteReturn, nos, total))
			break
		}
	}
	if int64(len(nos)) != total && len(errs) == 0 {
		errs = append(errs, fmt.Errorf("%w: %d of %d parts", ErrIncompleteReturn, len(nos), total))
	}
	return errs
}
