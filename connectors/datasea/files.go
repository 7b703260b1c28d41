package datasea

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/sftp"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/store"
)

// The data sea's SFTP batch files as a route: the datasea kind's feed
// "files" (configs/routes/datasea-files.yaml) polls the platform's drop
// (the hub's datasea.sftp, handed over as Endpoint.Drop) through
// connectors/sftp — done files, claims in the ledger, processed/ and
// failed/ — and emits each claimed file's records onto the route, as the
// API feeds do: each good line under its record id, each bad line as a
// quarantined message naming the file and its line number. The claim is
// finished (the file moved to processed/) only once emit returned, so a
// crash in between hands the file over again and re-emits the same keys;
// the consumer applies by record id, so nothing is applied twice.

// FeedFiles is the feed of a datasea route that polls the SFTP drop.
const FeedFiles = "files"

// FileNames are the batch files the platform drops on SFTP (the drop's
// include when datasea.sftp.include is empty).
var FileNames = []string{"DEATH_*.txt", "MIGRATION_*.txt"}

// SourceSFTP is HeaderSource of the records that came in batch files.
const SourceSFTP = "sftp"

// fileChunk bounds the messages of one emit call (a file's records are
// emitted chunk by chunk; its claim is finished after the last).
const fileChunk = 500

// Drop is the platform's SFTP drop as the hub hands it to the files feed
// (Endpoint.Drop).
type Drop struct {
	// SFTP is the drop's endpoint, host-key pinning, folders and pick rules (datasea.sftp).
	SFTP sftp.Config
	// Every is the pause between polls (datasea.sftp_every).
	Every time.Duration
}

// FileSource polls the drop and emits the records of each claimed file.
type FileSource struct {
	client *sftp.Client
	every  time.Duration
	leases Leases
	db     *store.DB
	ev     connectors.Events
	clk    clock.Clock
	log    *slog.Logger
}

var _ connectors.Source = (*FileSource)(nil)

// NewFileSource returns the files feed's source polling the hub's drop
// (Endpoint.Drop); without one (datasea.sftp unset) it fails with
// ErrNotConfigured. deps.Store holds the claim ledger.
func NewFileSource(cfg SourceConfig, deps connectors.Deps) (*FileSource, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ep, err := endpointOf(cfg, deps)
	if err != nil {
		return nil, err
	}
	if ep.Drop == nil {
		return nil, fmt.Errorf("%w: datasea.sftp is unset", ErrNotConfigured)
	}
	if deps.Store == nil {
		return nil, fmt.Errorf("datasea: files: the claim ledger needs the state store")
	}
	sc := ep.Drop.SFTP
	if len(sc.Include) == 0 {
		sc.Include = FileNames
	}
	if deps.Clock == nil {
		deps.Clock = clock.Real{}
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	c, err := sftp.New(Partner, "datasea-files", sc, deps, sftp.Keys{})
	if err != nil {
		return nil, err
	}
	every := ep.Drop.Every
	if every <= 0 {
		every = DefaultConfig().SFTPEvery
	}
	return &FileSource{client: c, every: every, leases: ep.Leases, db: deps.Store, ev: deps.Events, clk: deps.Clock, log: deps.Logger}, nil
}

// Endpoint describes the source for events and dead letters.
func (s *FileSource) Endpoint() string {
	return "datasea sftp " + s.client.Config().Addr + " " + s.client.Config().PollDir
}

// Run polls the drop every Drop.Every until ctx is done (on one replica at
// a time when the hub has leases; the claims keep a file single anyway).
func (s *FileSource) Run(ctx context.Context, emit connectors.Emit) error {
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = s.client.Close(cctx)
	}()
	if err := sftp.Migrate(ctx, s.db); err != nil {
		return fmt.Errorf("datasea: files: %w", err)
	}
	poll := func(ctx context.Context) error {
		return s.client.Run(ctx, s.every, sftp.PollOptions{}, func(ctx context.Context, in sftp.Inbound) error {
			return s.Handle(ctx, in, emit)
		})
	}
	if s.leases != nil {
		return s.leases.Run(ctx, "datasea.files", poll)
	}
	return poll(ctx)
}

// Poll makes one pass over the drop.
func (s *FileSource) Poll(ctx context.Context, emit connectors.Emit) (sftp.PollResult, error) {
	return s.client.Poll(ctx, sftp.PollOptions{}, func(ctx context.Context, in sftp.Inbound) error {
		return s.Handle(ctx, in, emit)
	})
}

// Handle emits one claimed file: its good lines as records, its bad lines
// quarantined with their line numbers (FileMessages). A file whose done
// file counts other than its lines fails whole: nothing is emitted, the
// file goes to failed/ and a rejected event says trailer_mismatch. A
// failed emit leaves the claim for the next pass (sftp.ErrRetry).
func (s *FileSource) Handle(ctx context.Context, in sftp.Inbound, emit connectors.Emit) error {
	name := filepath.Base(in.RemotePath)
	fh, err := os.Open(in.LocalPath)
	if err != nil {
		return fmt.Errorf("%w: %w", sftp.ErrRetry, err)
	}
	defer fh.Close()
	recs, bad, err := ParseFile(name, fh, s.clk.Now())
	if err != nil {
		return err
	}
	ev := monitor.Event{Time: s.clk.Now(), Partner: Partner, Flow: FileFeed(name), Direction: monitor.Inbound, Channel: "sftp",
		Type: monitor.Validated, Status: monitor.OK, FileName: name, Digest: in.Digest, Bytes: in.Bytes,
		Records: int64(len(recs)), RecordsFailed: int64(len(bad)), Component: "datasea"}
	if in.Done != nil && in.Done.Records != int64(len(recs)+len(bad)) {
		err := fmt.Errorf("%w: %s: done file counts %d records, the file has %d", ErrMalformed, name, in.Done.Records, len(recs)+len(bad))
		ev.Type, ev.Status, ev.ErrorMessage, ev.ErrorCode = monitor.Rejected, monitor.Error, err.Error(), "trailer_mismatch"
		s.emitEvent(ev)
		return err
	}
	msgs, err := FileMessages(name, in.Digest, recs, bad)
	if err != nil {
		return err
	}
	for len(msgs) > 0 {
		n := min(len(msgs), fileChunk)
		if err := emit(ctx, msgs[:n]...); err != nil {
			return fmt.Errorf("%w: emit %s: %w", sftp.ErrRetry, name, err)
		}
		msgs = msgs[n:]
	}
	if len(bad) > 0 {
		ev.Status = monitor.Warning
	}
	s.emitEvent(ev)
	s.log.Info("datasea: batch file emitted", "file", name, "records", len(recs), "quarantined", len(bad))
	return nil
}

func (s *FileSource) emitEvent(ev monitor.Event) {
	if s.ev != nil {
		s.ev.Emit(ev)
	}
}

// FileFeed returns the feed a batch file belongs to by its name
// (DEATH_*: death, else migration).
func FileFeed(name string) string {
	if strings.HasPrefix(name, "DEATH") {
		return "death"
	}
	return "migration"
}

// FileMessages are a batch file's bus messages: each good record under its
// record id (key and idempotency key, HeaderSource sftp), each bad line
// under a key naming the file's content (digest) and its line, with
// HeaderRef "NAME line N", HeaderReason and its masked raw line as body;
// the consumer keeps those aside and never applies them. The same file
// gives the same keys however often it is emitted.
func FileMessages(name, digest string, good []Record, bad []Bad) ([]connectors.Message, error) {
	out := make([]connectors.Message, 0, len(good)+len(bad))
	for _, r := range good {
		b, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		out = append(out, connectors.Message{Key: r.ID, IdempotencyKey: r.ID, Body: b,
			Headers: map[string]string{"Content-Type": "application/json", HeaderSource: SourceSFTP}})
	}
	if len(digest) > 16 {
		digest = digest[:16]
	}
	for _, b := range bad {
		key := "quarantine/" + FeedFiles + "/" + digest + "/" + b.Ref
		out = append(out, connectors.Message{Key: key, IdempotencyKey: key, Body: []byte(b.Raw),
			Headers: map[string]string{HeaderSource: SourceSFTP, HeaderRef: b.Ref, HeaderReason: b.Reason, HeaderRecordID: b.RecordID}})
	}
	return out, nil
}
