package datasea

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/sftp"
	"github.com/shanghai-mca/mzhub/monitor"
)

// FileNames are the batch files the platform drops on SFTP.
var FileNames = []string{"DEATH_*.txt", "MIGRATION_*.txt"}

// Files picks the platform's batch files from its SFTP drop (done files,
// claims in the ledger: connectors/sftp) and applies their records.
type Files struct {
	client *sftp.Client
	apply  Applier
	ev     connectors.Events
	clock  clock.Clock
	every  time.Duration
}

// NewFiles returns the SFTP way in; deps.Store holds the claim ledger
// (migrated with sftp.Migrate).
func NewFiles(cfg Config, deps connectors.Deps, apply Applier) (*Files, error) {
	if cfg.SFTP == nil {
		return nil, fmt.Errorf("datasea: files: no sftp configured")
	}
	sc := *cfg.SFTP
	if len(sc.Include) == 0 {
		sc.Include = FileNames
	}
	c, err := sftp.New(Partner, "datasea-files", sc, deps, sftp.Keys{})
	if err != nil {
		return nil, err
	}
	if deps.Clock == nil {
		deps.Clock = clock.Real{}
	}
	return &Files{client: c, apply: apply, ev: deps.Events, clock: deps.Clock, every: cfg.SFTPEvery}, nil
}

// Run polls until ctx is done.
func (f *Files) Run(ctx context.Context) error {
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = f.client.Close(cctx)
	}()
	return f.client.Run(ctx, f.every, sftp.PollOptions{}, f.Handle)
}

// Poll makes one pass over the drop.
func (f *Files) Poll(ctx context.Context) (sftp.PollResult, error) {
	return f.client.Poll(ctx, sftp.PollOptions{}, f.Handle)
}

// Handle applies one claimed file: its good lines are applied, its bad
// lines quarantined with their line numbers. A file whose done file counts
// other than its lines fails whole (moved to failed/, nothing applied).
func (f *Files) Handle(ctx context.Context, in sftp.Inbound) error {
	name := filepath.Base(in.RemotePath)
	fh, err := os.Open(in.LocalPath)
	if err != nil {
		return fmt.Errorf("%w: %w", sftp.ErrRetry, err)
	}
	defer fh.Close()
	recs, bad, err := ParseFile(name, fh, f.clock.Now())
	if err != nil {
		return err
	}
	flow := "migration"
	if len(name) >= 5 && name[:5] == "DEATH" {
		flow = "death"
	}
	ev := monitor.Event{Time: f.clock.Now(), Partner: Partner, Flow: flow, Direction: monitor.Inbound, Channel: "sftp",
		Type: monitor.Validated, Status: monitor.OK, FileName: name, Digest: in.Digest, Bytes: in.Bytes,
		Records: int64(len(recs)), RecordsFailed: int64(len(bad)), Component: "datasea"}
	if in.Done != nil && in.Done.Records != int64(len(recs)+len(bad)) {
		err := fmt.Errorf("%w: %s: done file counts %d records, the file has %d", ErrMalformed, name, in.Done.Records, len(recs)+len(bad))
		ev.Type, ev.Status, ev.ErrorMessage, ev.ErrorCode = monitor.Rejected, monitor.Error, err.Error(), "trailer_mismatch"
		f.emit(ev)
		return err
	}
	if _, err := f.apply.Apply(ctx, "sftp", recs, bad); err != nil {
		return fmt.Errorf("%w: apply %s: %w", sftp.ErrRetry, name, err)
	}
	if len(bad) > 0 {
		ev.Status = monitor.Warning
	}
	f.emit(ev)
	return nil
}

func (f *Files) emit(ev monitor.Event) {
	if f.ev != nil {
		f.ev.Emit(ev)
	}
}
