package mapcli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/mappings"
	"github.com/shanghai-mca/mzhub/security/ownerfile"
)

// maxShownRejects bounds the reject messages printed to stderr.
const maxShownRejects = 20

// progressMin is the input size above which a terminal gets a progress bar.
const progressMin = 8 << 20

// inputs is the repeatable --in flag.
type inputs []string

func (i *inputs) String() string { return strings.Join(*i, ",") }

func (i *inputs) Set(s string) error {
	*i = append(*i, s)
	return nil
}

type params map[string]string

func (p params) String() string { return fmt.Sprint(map[string]string(p)) }

func (p params) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", s)
	}
	p[k] = v
	return nil
}

// Run executes `mzhub map` with args (after the command name) and returns
// the exit code: 0 converted, 1 failed, refused (mappings.Reader.Verdict:
// empty, truncated, trailer count or total wrong, bytes invalid in the
// charset) or records rejected (unless --allow-rejects), 2 usage error.
// The output file appears only for an accepted file; --out - streams to
// stdout and cannot be taken back.
func Run(ctx context.Context, stdout, stderr io.Writer, isTTY bool, args []string) int {
	fl := flag.NewFlagSet("map", flag.ContinueOnError)
	fl.SetOutput(stderr)
	mapping := fl.String("mapping", "", "mapping file (kind: mapping)")
	var in inputs
	fl.Var(&in, "in", "input file in the source layout (- for stdin); repeat for a return split over several files (CCB)")
	out := fl.String("out", "", "output file in the target layout (- for stdout)")
	rejects := fl.String("rejects", "", "file receiving the rejected source records as they were")
	prm := params{}
	fl.Var(prm, "param", "mapping parameter key=value (repeatable), e.g. --param batch_no=MZ2026110001")
	acceptMismatch := fl.Bool("accept-mismatch", false, "accept a source whose trailer count or total does not match its details (written, exit 0); never one with invalid charset bytes")
	allowRejects := fl.Bool("allow-rejects", false, "exit 0 even when some source records were rejected (they are left out of the output)")
	fl.Usage = func() {
		fmt.Fprintln(stderr, "Usage: mzhub map --mapping FILE --in IN [--in IN2...] --out OUT [--rejects REJ] [--param k=v]...")
		fmt.Fprintln(stderr, "Converts IN with the mapping's source layout into OUT with its target layout.")
		fl.PrintDefaults()
	}
	if err := fl.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *mapping == "" || len(in) == 0 || *out == "" || fl.NArg() > 0 || (len(in) > 1 && slices.Contains(in, "-")) {
		fl.Usage()
		return 2
	}
	m, err := mappings.LoadMappingFile(*mapping)
	if err != nil {
		fmt.Fprintf(stderr, "mzhub map: %v\n", err)
		return 1
	}
	code, err := convert(ctx, m, in, *out, *rejects, prm, policy{*acceptMismatch, *allowRejects}, stdout, stderr, isTTY)
	if err != nil {
		fmt.Fprintf(stderr, "mzhub map: %v\n", err)
	}
	return code
}

// policy is what the operator accepts explicitly.
type policy struct {
	acceptMismatch, allowRejects bool
}

// accepts tells whether a refused source is accepted anyway: only a
// trailer mismatch, with --accept-mismatch.
func (p policy) accepts(refused error) bool {
	return refused == nil || (p.acceptMismatch && errors.Is(refused, mappings.ErrTrailerMismatch) && !errors.Is(refused, mappings.ErrCharset))
}

func convert(ctx context.Context, m *mappings.Mapping, inPaths []string, outPath, rejPath string, prm params,
	pol policy, stdout, stderr io.Writer, isTTY bool) (int, error) {
	var srcs []io.Reader
	var size int64
	for _, p := range inPaths {
		if p == "-" {
			srcs = append(srcs, os.Stdin)
			continue
		}
		f, err := os.Open(p)
		if err != nil {
			return 1, err
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil {
			size += st.Size()
		}
		srcs = append(srcs, f)
	}
	var dst io.Writer = stdout
	var tmp *ownerfile.File
	if outPath != "-" {
		var err error
		if tmp, err = ownerfile.Create(outPath); err != nil {
			return 1, err
		}
		defer tmp.Abort()
		dst = tmp
	}
	var rej *os.File
	if rejPath != "" {
		var err error
		// The rejects hold whole records (IDs, names, accounts): owner only.
		if rej, err = os.OpenFile(rejPath, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600); err != nil {
			return 1, err
		}
		defer rej.Close()
		if err := rej.Chmod(0o600); err != nil { // an existing file keeps its mode otherwise
			return 1, err
		}
	}
	eol := []byte(m.Source.LineEnding())
	shown, hidden := 0, 0
	var rejErr error
	opts := mappings.ConvertOptions{
		Params: prm,
		OnReject: func(r mappings.Reject) {
			if shown < maxShownRejects {
				fmt.Fprintf(stderr, "%s\n", r)
				shown++
			} else {
				hidden++
			}
			if rej != nil && !r.Warning && r.Raw != nil && rejErr == nil {
				if _, err := rej.Write(r.Raw); err == nil {
					_, rejErr = rej.Write(eol)
				} else {
					rejErr = err
				}
			}
		},
	}
	start := time.Now()
	bar := isTTY && size >= progressMin
	if bar {
		opts.Progress = func(n, records int64) { drawBar(stderr, n, size, records) }
	}
	res, err := m.ConvertParts(ctx, srcs, dst, opts)
	if bar {
		fmt.Fprintln(stderr)
	}
	if hidden > 0 {
		fmt.Fprintf(stderr, "... and %d more rejects/warnings\n", hidden)
	}
	if err != nil {
		return 1, err
	}
	if rejErr != nil {
		return 1, fmt.Errorf("write rejects: %w", rejErr)
	}
	printSummary(stdout, outPath, m, res, time.Since(start))
	if !pol.accepts(res.Refused) {
		// The output never appears for a refused file (the deferred
		// clean-up removes the temporary one).
		return 1, fmt.Errorf("source file not accepted, no output written: %w", res.Refused)
	}
	if tmp != nil {
		if err := tmp.Commit(); err != nil {
			return 1, err
		}
	}
	if res.Rejected > 0 && !pol.allowRejects {
		return 1, fmt.Errorf("%d source records rejected and left out of the output (see the messages above and --rejects); --allow-rejects accepts that", res.Rejected)
	}
	return 0, nil
}

func drawBar(w io.Writer, n, size, records int64) {
	const width = 30
	frac := float64(n) / float64(size)
	if frac > 1 {
		frac = 1
	}
	done := int(frac * width)
	fmt.Fprintf(w, "\r[%s%s] %3.0f%% %d records", strings.Repeat("#", done), strings.Repeat(" ", width-done), frac*100, records)
}

func printSummary(w io.Writer, outPath string, m *mappings.Mapping, res mappings.ConvertResult, d time.Duration) {
	out := w
	if outPath == "-" {
		// The converted data went to stdout: the summary goes nowhere else.
		return
	}
	s := res.Read
	fmt.Fprintf(out, "mapping   %s (%s -> %s)\n", m.Name, m.Source.Name, m.Target.Name)
	if len(res.Parts) > 1 {
		fmt.Fprintf(out, "parts     %d input files\n", len(res.Parts))
	}
	fmt.Fprintf(out, "read      %d records, %d details, %d rejected, %d warnings\n", s.Records+s.Rejected, s.Details, s.Rejected, s.Warnings)
	fmt.Fprintf(out, "written   %d details, %d skipped, %d rejected on write, %d warnings\n", res.Written, res.Skipped, res.Rejected-s.Rejected, res.WriteWarnings)
	fmt.Fprintf(out, "totals    read %s yuan, written %s yuan\n", mappings.FormatFen(s.AmountFen), mappings.FormatFen(res.WrittenFen))
	if res.CheckErr != nil {
		fmt.Fprintf(out, "trailer   MISMATCH: %v\n", strings.ReplaceAll(res.CheckErr.Error(), "\n", "; "))
	} else {
		fmt.Fprintf(out, "trailer   ok\n")
	}
	if res.Refused != nil {
		fmt.Fprintf(out, "verdict   REFUSED: %v\n", res.Refused)
	} else {
		fmt.Fprintf(out, "verdict   accepted\n")
	}
	if secs := d.Seconds(); secs > 0 {
		fmt.Fprintf(out, "time      %.2fs (%.0f records/s)\n", secs, float64(s.Records)/secs)
	}
}
