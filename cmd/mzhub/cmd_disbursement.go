package main

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/bank"
	"github.com/shanghai-mca/mzhub/hub"
	"github.com/shanghai-mca/mzhub/mappings"
	"github.com/shanghai-mca/mzhub/services/disbursement"
)

func init() {
	register(command{name: "disbursement", summary: "run, resume, confirm, inspect and report the allowance disbursement / deduction cycle", run: runDisbursement})
	registerLinter(linter{
		name: "bank partner",
		match: func(path string, top map[string]any) bool {
			_, code := top["code"]
			_, bc := top["bank_code"]
			return code && bc && strings.Contains(filepath.ToSlash(path), "partners/banks/")
		},
		lint: func(path string) []lintProblem {
			b, err := os.ReadFile(path)
			if err == nil {
				_, err = bank.DecodeConfig(b)
			}
			if err == nil {
				return nil
			}
			var out []lintProblem
			for _, l := range strings.Split(err.Error(), "\n") {
				out = append(out, lintProblem{File: path, Line: lineOf(errors.New(l)), Message: l})
			}
			return out
		},
	})
}

func disbursementUsage(fs *flag.FlagSet) {
	w := fs.Output()
	fmt.Fprintln(w, "Usage: mzhub disbursement <run|resume|status|confirm|report|generate> --period YYYY-MM [flags]")
	fmt.Fprintln(w, "  run       start (or continue) the cycle: --list FILE (or --generate N), --letter-total FEN")
	fmt.Fprintln(w, "  resume    continue a batch where it stopped")
	fmt.Fprintln(w, "  status    show the stages and record counts of a batch")
	fmt.Fprintln(w, "  confirm   --level district|city --user NAME")
	fmt.Fprintln(w, "  report    per bank, district and status (CSV), or --year YYYY for monthly/quarterly/yearly statistics")
	fmt.Fprintln(w, "  generate  --generate N --list FILE: write a synthetic payment list")
	fs.PrintDefaults()
}

func runDisbursement(ctx context.Context, env *cliEnv, args []string) int {
	fs := flag.NewFlagSet("disbursement", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	cfgPath := fs.String("config", "", "hub config file (default: the built-in embedded profile)")
	period := fs.String("period", "", "month of the batch, YYYY-MM")
	kind := fs.String("kind", "disbursement", "disbursement or deduction")
	list := fs.String("list", "", "payment list file (CSV, see docs/disbursement.md)")
	generate := fs.Int("generate", 0, "generate a synthetic list of N persons (run, generate)")
	letter := fs.Int64("letter-total", 0, "official letter total in fen (发函总额)")
	district := fs.String("confirm-district", "", "confirm the batch at district level as this user")
	city := fs.String("confirm-city", "", "confirm the batch at city level as this user")
	level := fs.String("level", "", "confirm: district or city")
	user := fs.String("user", "", "confirm: the confirming user")
	year := fs.Int("year", 0, "report: statistics of a year")
	demo := fs.Bool("demo", false, "run against the six in-process bank simulators")
	fs.Usage = func() { disbursementUsage(fs) }
	if len(args) == 0 {
		disbursementUsage(fs)
		return 2
	}
	verb := args[0]
	switch verb {
	case "-h", "-help", "--help", "help":
		disbursementUsage(fs)
		return 0
	}
	if code, ok := parseFlags(fs, args[1:]); !ok {
		return code
	}
	if verb == "generate" {
		if *generate <= 0 || *list == "" || *period == "" {
			fmt.Fprintln(env.Stderr, "mzhub disbursement generate: --generate N, --list FILE and --period are required")
			return 2
		}
		f, err := os.Create(*list)
		if err == nil {
			err = disbursement.WriteList(f, disbursement.GenerateOptions{Persons: *generate, Seed: uint64(time.Now().UnixNano()), Period: *period, Anomalies: true})
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintln(env.Stderr, "mzhub disbursement generate:", err)
			return 1
		}
		fmt.Fprintf(env.Stdout, "wrote %d persons to %s\n", *generate, *list)
		return 0
	}
	if *period == "" && !(verb == "report" && *year > 0) {
		fmt.Fprintln(env.Stderr, "mzhub disbursement: --period YYYY-MM is required")
		return 2
	}
	k := bank.Kind(*kind)
	if k != bank.Disbursement && k != bank.Deduction {
		fmt.Fprintf(env.Stderr, "mzhub disbursement: --kind %q: want disbursement or deduction\n", *kind)
		return 2
	}
	cfg, err := loadConfig(env, *cfgPath)
	if err != nil {
		fmt.Fprintln(env.Stderr, "mzhub disbursement:", err)
		return 1
	}
	transport := verb == "run" || verb == "resume"
	if verb == "status" || verb == "report" {
		// Reading creates nothing: no keys (a hub without keys says so).
		cfg.Security.GenerateKeys = false
	}
	if *demo {
		// The demo's state lives beside the simulators' data.
		cfg.Node = "demo"
	}
	// BuildCycles gives this CLI process a node identity of its own for
	// the cycle lease: it runs a cycle only when no serve holds the lease.
	h, err := hub.BuildCycles(ctx, cfg, env.Logger, hub.CycleOptions{Demo: *demo, Transport: transport})
	if err != nil {
		fmt.Fprintln(env.Stderr, "mzhub disbursement:", err)
		return 1
	}
	defer func() { _ = h.Close(context.WithoutCancel(ctx)) }()
	svc := h.Disbursement()
	actor := "cli:" + osUser()
	switch verb {
	case "run", "resume":
		req := disbursement.Request{Kind: k, Period: *period, LetterTotal: *letter, Actor: actor}
		if verb == "run" {
			req.ListFile = *list
			if *generate > 0 {
				req.ListFile = filepath.Join(os.TempDir(), fmt.Sprintf("mzhub-list-%s-%d.csv", *period, os.Getpid()))
				f, err := os.OpenFile(req.ListFile, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
				if err == nil {
					err = disbursement.WriteList(f, disbursement.GenerateOptions{Persons: *generate, Seed: 1, Period: *period, Anomalies: true})
					_ = f.Close()
				}
				if err != nil {
					fmt.Fprintln(env.Stderr, "mzhub disbursement: generate:", err)
					return 1
				}
				defer os.Remove(req.ListFile)
			}
		}
		if _, err := svc.Submit(ctx, req); err != nil {
			fmt.Fprintln(env.Stderr, "mzhub disbursement:", err)
			return 1
		}
		var b *disbursement.Batch
		bar := newProgressBar(env)
		ran, err := h.Leases().TryRun(ctx, hub.CycleLease, func(ctx context.Context) error {
			var err error
			b, err = svc.RunRequested(ctx, disbursement.RunOptions{Kind: k, Period: *period,
				ConfirmDistrict: *district, ConfirmCity: *city, Progress: bar.update})
			return err
		})
		bar.done()
		if !ran && err == nil {
			holder, _, _ := h.Leases().Holder(ctx, hub.CycleLease)
			fmt.Fprintf(env.Stdout, "%s: queued; the hub on %s runs cycles (follow with: mzhub disbursement status --period %s)\n",
				disbursement.BatchName(k, *period), holder, *period)
			return 0
		}
		switch {
		case errors.Is(err, disbursement.ErrAwaitingConfirmation):
			fmt.Fprintf(env.Stdout, "%s: waiting for confirmation (mzhub disbursement confirm --period %s --level district|city --user NAME)\n", b.Name, *period)
			return 0
		case errors.Is(err, disbursement.ErrAwaitingLetterTotal):
			fmt.Fprintf(env.Stdout, "%s: waiting for the letter total; the system total is %d fen (%d valid records): mzhub disbursement resume --period %s --letter-total FEN\n",
				b.Name, b.SystemTotal, b.Valid, *period)
			return 0
		case err != nil:
			fmt.Fprintln(env.Stderr, "mzhub disbursement:", err)
			if b != nil && errors.Is(err, disbursement.ErrTotalMismatch) {
				fmt.Fprintf(env.Stderr, "system total is %d fen (%d valid records); resume with --letter-total once the letter matches\n", b.SystemTotal, b.Valid)
			}
			return 1
		}
		return cycleExit(ctx, env, svc, k, *period)
	case "status":
		return printStatus(ctx, env, svc, k, *period)
	case "confirm":
		if err := svc.Confirm(ctx, k, *period, *level, *user); err != nil {
			fmt.Fprintln(env.Stderr, "mzhub disbursement:", err)
			return 1
		}
		fmt.Fprintf(env.Stdout, "%s confirmed at %s level by %s\n", disbursement.BatchName(k, *period), *level, *user)
		return 0
	case "report":
		if *year > 0 {
			months, quarters, total, err := svc.Stats(ctx, k, *year)
			if err != nil {
				fmt.Fprintln(env.Stderr, "mzhub disbursement:", err)
				return 1
			}
			w := csv.NewWriter(env.Stdout)
			_ = w.Write([]string{"period", "paid", "failed", "missing", "paid_fen"})
			for _, p := range append(append(months, quarters...), total) {
				_ = w.Write([]string{disbursement.SafeCell(p.Period), itoa(p.Paid), itoa(p.Failed), itoa(p.Missing), itoa(p.PaidFen)})
			}
			w.Flush()
			return 0
		}
		rows, err := svc.Report(ctx, k, *period)
		if err != nil {
			fmt.Fprintln(env.Stderr, "mzhub disbursement:", err)
			return 1
		}
		w := csv.NewWriter(env.Stdout)
		_ = w.Write([]string{"bank", "division", "status", "count", "amount_fen"})
		for _, r := range rows {
			_ = w.Write([]string{disbursement.SafeCell(r.Bank), disbursement.SafeCell(r.Division), disbursement.SafeCell(r.Status), itoa(r.Count), itoa(r.AmountFen)})
		}
		w.Flush()
		return 0
	}
	fmt.Fprintf(env.Stderr, "mzhub disbursement: unknown action %q\n", verb)
	disbursementUsage(fs)
	return 2
}

func printStatus(ctx context.Context, env *cliEnv, svc *disbursement.Service, k bank.Kind, period string) int {
	st, err := svc.Status(ctx, k, period)
	if err != nil {
		fmt.Fprintln(env.Stderr, "mzhub disbursement:", err)
		return 1
	}
	writeStatus(env.Stdout, st)
	return 0
}

// cycleExit is the exit code of run and resume once the cycle stopped
// without an error: 1 when it ended with every sent record missing (no
// bank answered anything: nothing was paid, nothing reconciled).
func cycleExit(ctx context.Context, env *cliEnv, svc *disbursement.Service, k bank.Kind, period string) int {
	st, err := svc.Status(ctx, k, period)
	if err != nil {
		fmt.Fprintln(env.Stderr, "mzhub disbursement:", err)
		return 1
	}
	writeStatus(env.Stdout, st)
	if msg := allMissing(st); msg != "" {
		fmt.Fprintln(env.Stderr, "mzhub disbursement:", msg)
		return 1
	}
	return 0
}

// allMissing says why a finished cycle is a failure when every record sent
// ended missing ("" otherwise).
func allMissing(st *disbursement.StatusReport) string {
	c := st.Counts
	if st.Batch.Stage == disbursement.StageDone && c["missing"] > 0 && c["paid"] == 0 && c["failed"] == 0 {
		return fmt.Sprintf("%s: every one of the %d records sent is missing: no bank return was reconciled", st.Batch.Name, c["missing"])
	}
	return ""
}

// writeStatus prints a batch's state as readable tables: the batch, its
// stages, its records by status, the validation issues, and its bank
// files (a failed upload or a refused return says why).
func writeStatus(w io.Writer, st *disbursement.StatusReport) {
	b := st.Batch
	fmt.Fprintf(w, "%s  stage %s (%s)\n", b.Name, b.Stage, b.Status)
	fmt.Fprintf(w, "  records %d, valid %d, system total %s yuan, letter total %s yuan\n",
		b.Records, b.Valid, mappings.FormatFen(b.SystemTotal), mappings.FormatFen(b.LetterTotal))
	if b.Error != "" {
		fmt.Fprintln(w, "  error:")
		for _, l := range strings.Split(b.Error, "\n") {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nSTAGE\tTOOK\tDETAIL")
	for _, s := range st.Stages {
		took := "running"
		if s.EndedMs > 0 {
			took = fmt.Sprintf("%.2fs", float64(s.EndedMs-s.StartedMs)/1000)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Stage, took, s.Detail)
	}
	fmt.Fprintln(tw, "\nRECORDS\tCOUNT\t")
	for code := disbursement.StatusListed; code <= disbursement.StatusMissing; code++ {
		if n, ok := st.Counts[disbursement.StatusName(code)]; ok {
			fmt.Fprintf(tw, "%s\t%d\t\n", disbursement.StatusName(code), n)
		}
	}
	fmt.Fprintf(tw, "quarantined return records\t%d\t\n", st.Quarantined)
	if len(st.Issues) > 0 {
		fmt.Fprintln(tw, "\nISSUE\tCOUNT\t")
		codes := make([]string, 0, len(st.Issues))
		for c := range st.Issues {
			codes = append(codes, c)
		}
		sort.Strings(codes)
		for _, c := range codes {
			fmt.Fprintf(tw, "%s\t%d\t\n", c, st.Issues[c])
		}
	}
	_ = tw.Flush()
	if len(st.Files) > 0 {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "\nBANK\tFILE\tDIRECTION\tSTATE\tRECORDS\tAMOUNT (YUAN)\tDETAIL")
		for _, f := range st.Files {
			state := f.State
			switch state {
			case "upload_failed", "refused":
				state = strings.ToUpper(strings.ReplaceAll(state, "_", " "))
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", f.Bank, f.Name, f.Direction, state, f.Records, mappings.FormatFen(f.TotalFen), f.Detail)
		}
		_ = tw.Flush()
	}
}

// osUser names the operating-system user running the CLI, for the audit.
func osUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "unknown"
}

// progressBar draws the progress of the current stage on a terminal, or
// logs each stage once otherwise.
type progressBar struct {
	env   *cliEnv
	stage string
	last  time.Time
}

func newProgressBar(env *cliEnv) *progressBar { return &progressBar{env: env} }

func (p *progressBar) update(stage string, done, total int64) {
	if !p.env.IsTerminal {
		if stage != p.stage {
			p.stage = stage
			fmt.Fprintf(p.env.Stderr, "stage %s\n", stage)
		}
		return
	}
	if stage == p.stage && time.Since(p.last) < 100*time.Millisecond && done < total {
		return
	}
	if stage != p.stage && p.stage != "" {
		fmt.Fprintln(p.env.Stderr)
	}
	p.stage, p.last = stage, time.Now()
	pct := 0.0
	if total > 0 {
		pct = float64(done) / float64(total)
	}
	n := int(pct * 30)
	fmt.Fprintf(p.env.Stderr, "\r%-12s [%s%s] %5.1f%%", stage, strings.Repeat("#", n), strings.Repeat(".", 30-n), pct*100)
}

func (p *progressBar) done() {
	if p.env.IsTerminal && p.stage != "" {
		fmt.Fprintln(p.env.Stderr)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
