package sftp

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emmansun/gmsm/sm2"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/sftp/sftptest"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/monitor/monitortest"
	"github.com/shanghai-mca/mzhub/security/filesign"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

type fixture struct {
	srv      *sftptest.Server
	db       *store.DB
	events   *monitortest.Recorder
	dir      string
	signer   *filesign.Signer
	verifier *filesign.Verifier
	// clock is handed to clients (nil: the wall clock).
	clock clock.Clock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	srv, err := sftptest.Start(filepath.Join(dir, "remote"), "hub", "secret")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	db := storetest.Open(t)
	if err := Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	priv, err := sm2.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"upload", "download"} {
		if err := os.MkdirAll(filepath.Join(srv.Root(), d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	return &fixture{srv: srv, db: db, events: &monitortest.Recorder{}, dir: dir, signer: filesign.NewSigner(priv, nil), verifier: filesign.NewVerifier(&priv.PublicKey, nil)}
}

func (f *fixture) config() Config {
	c := DefaultConfig()
	c.Addr = f.srv.Addr()
	c.User, c.Password = "hub", "secret"
	c.HostKeyFingerprint = f.srv.Fingerprint()
	c.OpTimeout = 2 * time.Second
	c.RetryBackoff = 10 * time.Millisecond
	c.Node = "node-a"
	c.LocalDir = filepath.Join(f.dir, "local")
	return c
}

func (f *fixture) client(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := New("bank.test", "disbursement", cfg, connectors.Deps{Store: f.db, Events: f.events, DataDir: f.dir, Clock: f.clock}, Keys{Signer: f.signer, Verifier: f.verifier})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func (f *fixture) localFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(f.dir, name)
	if err := os.WriteFile(p, data, 0o640); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUploadThenPollOnce(t *testing.T) {
	f := newFixture(t)
	cfg := f.config()
	cfg.PollDir = "upload"
	c := f.client(t, cfg)
	ctx := context.Background()
	data := bytes.Repeat([]byte("D|1|2|3\n"), 50000)
	up, err := c.Upload(ctx, Outbound{LocalPath: f.localFile(t, "a.txt", data), Name: "a.txt", Records: 50000, TotalFen: 123})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(f.srv.Root(), "upload", "a.txt.done"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseDone(b)
	if err != nil || d.Records != 50000 || d.TotalFen != 123 || d.SM3 != up.Digest || d.Bytes != int64(len(data)) {
		t.Fatalf("done file %+v, %v", d, err)
	}
	if _, err := os.Stat(filepath.Join(f.srv.Root(), "upload", "a.txt.part")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left behind: %v", err)
	}
	again, err := c.Upload(ctx, Outbound{LocalPath: f.localFile(t, "a.txt", data), Name: "a.txt", Records: 50000, TotalFen: 123})
	if err != nil || !again.AlreadySent {
		t.Fatalf("second upload: %+v %v; want AlreadySent", again, err)
	}
	calls := 0
	h := func(ctx context.Context, in Inbound) error {
		calls++
		got, err := os.ReadFile(in.LocalPath)
		if err != nil || !bytes.Equal(got, data) || in.Done == nil || in.Done.Records != 50000 {
			t.Errorf("inbound %+v: %v", in, err)
		}
		return nil
	}
	for range 2 {
		if _, err := c.Poll(ctx, PollOptions{}, h); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 1 {
		t.Fatalf("handler called %d times, want 1", calls)
	}
	if _, err := os.Stat(filepath.Join(f.srv.Root(), "upload", "processed", "a.txt")); err != nil {
		t.Fatalf("not moved to processed: %v", err)
	}
	if f.events.CountType(monitor.Uploaded) != 1 || f.events.CountType(monitor.Downloaded) != 1 || f.events.CountType(monitor.Claimed) != 1 {
		t.Fatalf("events: %+v", f.events.Events())
	}
	// The same file put back (a duplicate delivery) is recognised and not processed again.
	for _, s := range []string{"", ".done", ".sig"} {
		b, _ := os.ReadFile(filepath.Join(f.srv.Root(), "upload", "processed", "a.txt"+s))
		_ = os.WriteFile(filepath.Join(f.srv.Root(), "upload", "a.txt"+s), b, 0o640)
	}
	res, err := c.Poll(ctx, PollOptions{}, h)
	if err != nil || res.Duplicates != 1 || calls != 1 || f.events.CountType(monitor.Dropped) != 1 {
		t.Fatalf("duplicate: %+v %v calls=%d", res, err, calls)
	}
}

func TestFileExistsPolicy(t *testing.T) {
	for _, tc := range []struct {
		policy   string
		wantErr  error
		wantPath string
	}{
		{ExistsFail, ErrExists, ""},
		{ExistsOverwrite, nil, "upload/x.txt"},
		{ExistsVersion, nil, "upload/x_v2.txt"},
	} {
		t.Run(tc.policy, func(t *testing.T) {
			f := newFixture(t)
			cfg := f.config()
			cfg.FileExists = tc.policy
			c := f.client(t, cfg)
			if err := os.WriteFile(filepath.Join(f.srv.Root(), "upload", "x.txt"), []byte("old"), 0o640); err != nil {
				t.Fatal(err)
			}
			up, err := c.Upload(context.Background(), Outbound{LocalPath: f.localFile(t, "x.txt", []byte("new content")), Name: "x.txt"})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil {
				return
			}
			if up.RemotePath != tc.wantPath {
				t.Fatalf("remote %s, want %s", up.RemotePath, tc.wantPath)
			}
			got, _ := os.ReadFile(filepath.Join(f.srv.Root(), filepath.FromSlash(tc.wantPath)))
			if string(got) != "new content" {
				t.Fatalf("remote content %q", got)
			}
		})
	}
}

func TestUploadResumeAfterRenameDoesNotResend(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, f.config())
	ctx := context.Background()
	data := []byte("payload of the first attempt\n")
	local := f.localFile(t, "r.txt", data)
	digest, size, _ := DigestFile(local)
	// The crash happened after the rename, before the done file: the
	// ledger says renamed, the remote data is in place (we mark it to see
	// whether it is sent again).
	marker := bytes.Repeat([]byte("X"), len(data))
	if err := os.WriteFile(filepath.Join(f.srv.Root(), "upload", "r.txt"), marker, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := c.ledger.setUpload(ctx, "bank.test", "r.txt", uploadRow{remotePath: "upload/r.txt", digest: digest, bytes: size, state: upRenamed}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Upload(ctx, Outbound{LocalPath: local, Name: "r.txt"}); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(filepath.Join(f.srv.Root(), "upload", "r.txt"))
	if !bytes.Equal(got, marker) {
		t.Fatal("data file was sent again after the rename")
	}
	if _, err := os.Stat(filepath.Join(f.srv.Root(), "upload", "r.txt.done")); err != nil {
		t.Fatal("done file missing after resume")
	}
}

func TestPollRejectsWrongDigestAndBadSignature(t *testing.T) {
	f := newFixture(t)
	cfg := f.config()
	c := f.client(t, cfg)
	dl := filepath.Join(f.srv.Root(), "download")
	good := []byte("R|1|paid\n")
	sum := func(b []byte) string { p := f.localFile(t, "tmp", b); d, _, _ := DigestFile(p); return d }
	// truncated: the done file describes more than the data holds.
	_ = os.WriteFile(filepath.Join(dl, "t.txt"), good[:4], 0o640)
	_ = os.WriteFile(filepath.Join(dl, "t.txt.done"), DoneInfo{File: "t.txt", Bytes: int64(len(good)), SM3: sum(good)}.Marshal(), 0o640)
	// forged signature.
	_ = os.WriteFile(filepath.Join(dl, "s.txt"), good, 0o640)
	_ = os.WriteFile(filepath.Join(dl, "s.txt.done"), DoneInfo{File: "s.txt", Bytes: int64(len(good)), SM3: sum(good)}.Marshal(), 0o640)
	_ = os.WriteFile(filepath.Join(dl, "s.txt.sig"), []byte("not a signature"), 0o640)
	// no done file: waits.
	_ = os.WriteFile(filepath.Join(dl, "w.txt"), good, 0o640)
	calls := 0
	res, err := c.Poll(context.Background(), PollOptions{}, func(context.Context, Inbound) error { calls++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if res.Rejected != 2 || res.Waiting != 1 || calls != 0 {
		t.Fatalf("result %+v calls %d", res, calls)
	}
	if f.events.CountType(monitor.Rejected) != 2 {
		t.Fatalf("want 2 rejected events")
	}
	for _, n := range []string{"t.txt", "s.txt"} {
		if _, err := os.Stat(filepath.Join(dl, "failed", n)); err != nil {
			t.Fatalf("%s not in failed/: %v", n, err)
		}
	}
}

func TestStableSizeWithoutDoneFile(t *testing.T) {
	f := newFixture(t)
	fake := clock.NewFake(time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC))
	f.clock = fake
	cfg := f.config()
	cfg.RequireDone = false
	cfg.StableFor = 200 * time.Millisecond
	cfg.MoveTo = MoveLocal
	c := f.client(t, cfg)
	_ = os.WriteFile(filepath.Join(f.srv.Root(), "download", "n.txt"), []byte("abc"), 0o640)
	calls := 0
	h := func(context.Context, Inbound) error { calls++; return nil }
	ctx := context.Background()
	if _, _ = c.Poll(ctx, PollOptions{}, h); calls != 0 {
		t.Fatal("picked before stable")
	}
	fake.Advance(cfg.StableFor - time.Millisecond)
	if _, _ = c.Poll(ctx, PollOptions{}, h); calls != 0 {
		t.Fatal("picked before its size was stable for stable_for")
	}
	fake.Advance(time.Millisecond)
	_, _ = c.Poll(ctx, PollOptions{}, h)
	_, _ = c.Poll(ctx, PollOptions{}, h) // remote stays (move_to local); the ledger stops a second pass
	if calls != 1 {
		t.Fatalf("handler called %d times, want 1", calls)
	}
	if _, err := os.Stat(filepath.Join(cfg.LocalDir, "processed", "n.txt")); err != nil {
		t.Fatal("local copy not in processed/")
	}
}

func TestClaimOnceAcrossReplicas(t *testing.T) {
	f := newFixture(t)
	dl := filepath.Join(f.srv.Root(), "download")
	for i := range 6 {
		n := string(rune('a'+i)) + ".txt"
		data := []byte(strings.Repeat(n, 1000))
		_ = os.WriteFile(filepath.Join(dl, n), data, 0o640)
		d, s, _ := DigestFile(filepath.Join(dl, n))
		_ = os.WriteFile(filepath.Join(dl, n+".done"), DoneInfo{File: n, Bytes: s, SM3: d}.Marshal(), 0o640)
	}
	var mu sync.Mutex
	seen := map[string]int{}
	h := func(_ context.Context, in Inbound) error {
		mu.Lock()
		seen[in.RemotePath]++
		mu.Unlock()
		return nil
	}
	var wg sync.WaitGroup
	for _, node := range []string{"a", "b", "c"} {
		cfg := f.config()
		cfg.Node = node
		cfg.MoveTo = MoveLocal // files stay: only the ledger keeps them from a second run
		cfg.LocalDir = filepath.Join(f.dir, "local-"+node)
		c := f.client(t, cfg)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 3 {
				if _, err := c.Poll(context.Background(), PollOptions{}, h); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if len(seen) != 6 {
		t.Fatalf("processed %d files, want 6", len(seen))
	}
	for p, n := range seen {
		if n != 1 {
			t.Fatalf("%s processed %d times", p, n)
		}
	}
}

func TestNetworkFaults(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	t.Run("drop mid-download is retried", func(t *testing.T) {
		f := newFixture(t)
		c := f.client(t, f.config())
		dl := filepath.Join(f.srv.Root(), "download")
		_ = os.WriteFile(filepath.Join(dl, "big.txt"), big, 0o640)
		d, s, _ := DigestFile(filepath.Join(dl, "big.txt"))
		_ = os.WriteFile(filepath.Join(dl, "big.txt.done"), DoneInfo{File: "big.txt", Bytes: s, SM3: d}.Marshal(), 0o640)
		f.srv.Faults.DropAfterBytes.Store(100 << 10)
		calls := 0
		res, err := c.Poll(context.Background(), PollOptions{}, func(_ context.Context, in Inbound) error {
			calls++
			if in.Digest != d {
				t.Errorf("digest %s want %s", in.Digest, d)
			}
			return nil
		})
		if err != nil || res.Processed != 1 || calls != 1 {
			t.Fatalf("%+v %v calls %d", res, err, calls)
		}
		if f.events.CountType(monitor.Retried) == 0 {
			t.Fatal("no retried event")
		}
	})
	t.Run("drop mid-upload is retried", func(t *testing.T) {
		f := newFixture(t)
		c := f.client(t, f.config())
		f.srv.Faults.DropAfterBytes.Store(100 << 10)
		up, err := c.Upload(context.Background(), Outbound{LocalPath: f.localFile(t, "u.txt", big), Name: "u.txt"})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(filepath.Join(f.srv.Root(), "upload", "u.txt"))
		if !bytes.Equal(got, big) || up.Bytes != int64(len(big)) || f.events.CountType(monitor.Retried) == 0 {
			t.Fatal("upload after drop incomplete or not retried")
		}
	})
	t.Run("stall hits the deadline", func(t *testing.T) {
		f := newFixture(t)
		cfg := f.config()
		cfg.OpTimeout = 300 * time.Millisecond
		cfg.Retries = 1
		c := f.client(t, cfg)
		dl := filepath.Join(f.srv.Root(), "download")
		_ = os.WriteFile(filepath.Join(dl, "s.txt"), big, 0o640)
		d, s, _ := DigestFile(filepath.Join(dl, "s.txt"))
		_ = os.WriteFile(filepath.Join(dl, "s.txt.done"), DoneInfo{File: "s.txt", Bytes: s, SM3: d}.Marshal(), 0o640)
		f.srv.Faults.StallReads.Store(true)
		start := time.Now()
		res, err := c.Poll(context.Background(), PollOptions{}, func(context.Context, Inbound) error { return nil })
		if el := time.Since(start); el > 5*time.Second {
			t.Fatalf("stalled poll took %s", el)
		}
		if err != nil || res.Processed != 0 || res.Waiting != 1 {
			t.Fatalf("%+v %v", res, err)
		}
		select {
		case <-f.srv.Faults.Stalled():
		default:
			t.Fatal("the server's Stalled signal did not fire for the stalled read")
		}
		f.srv.Faults.Unstall()
		select {
		case <-f.srv.Faults.Stalled():
			t.Fatal("Stalled fired again after Unstall, before any new stall")
		default:
		}
		res, err = c.Poll(context.Background(), PollOptions{}, func(context.Context, Inbound) error { return nil })
		if err != nil || res.Processed != 1 {
			t.Fatalf("after unstall %+v %v", res, err)
		}
	})
	t.Run("refused logins open the breaker", func(t *testing.T) {
		f := newFixture(t)
		cfg := f.config()
		cfg.Retries = 0
		cfg.BreakerFailures = 2
		cfg.BreakerOpenFor = time.Hour
		c := f.client(t, cfg)
		f.srv.Faults.RefuseLogin.Store(true)
		var last error
		for range 3 {
			_, last = c.Poll(context.Background(), PollOptions{}, nil)
		}
		if !errors.Is(last, gobreaker.ErrOpenState) {
			t.Fatalf("third call: %v, want open breaker", last)
		}
	})
	t.Run("host key mismatch", func(t *testing.T) {
		f := newFixture(t)
		cfg := f.config()
		cfg.HostKeyFingerprint = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
		c := f.client(t, cfg)
		if _, err := c.Poll(context.Background(), PollOptions{}, nil); !errors.Is(err, ErrHostKey) {
			t.Fatalf("err %v, want ErrHostKey", err)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	c.FileExists = "maybe"
	err := c.Validate()
	for _, want := range []string{"addr", "user", "password", "host key", "file_exists"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want mention of %q", err, want)
		}
	}
}

func FuzzParseDone(f *testing.F) {
	f.Add(DoneInfo{File: "a", Bytes: 1, Records: 2, TotalFen: 3, SM3: strings.Repeat("ab", 32)}.Marshal())
	f.Add([]byte("file=x\nsm3=zz\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDone(b)
		if err != nil {
			return
		}
		d2, err := ParseDone(d.Marshal())
		if err != nil || d2 != d {
			if !strings.ContainsAny(d.File, "\n\r") && strings.TrimSpace(d.File) == d.File {
				t.Fatalf("round trip %+v -> %+v, %v", d, d2, err)
			}
		}
	})
}

func TestHandlerRetryLeavesFileClaimed(t *testing.T) {
	f := newFixture(t)
	c := f.client(t, f.config())
	dl := filepath.Join(f.srv.Root(), "download")
	_ = os.WriteFile(filepath.Join(dl, "r.txt"), []byte("x\n"), 0o640)
	d, s, _ := DigestFile(filepath.Join(dl, "r.txt"))
	_ = os.WriteFile(filepath.Join(dl, "r.txt.done"), DoneInfo{File: "r.txt", Bytes: s, SM3: d}.Marshal(), 0o640)
	calls := 0
	h := func(context.Context, Inbound) error {
		calls++
		if calls == 1 {
			return fmt.Errorf("busy: %w", ErrRetry)
		}
		return nil
	}
	ctx := context.Background()
	if _, err := c.Poll(ctx, PollOptions{}, h); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dl, "r.txt")); err != nil {
		t.Fatal("file moved away after a retryable failure")
	}
	res, err := c.Poll(ctx, PollOptions{}, h)
	if err != nil || res.Processed != 1 || calls != 2 {
		t.Fatalf("%+v %v calls %d", res, err, calls)
	}
}

func TestKeyAuthAndKnownHosts(t *testing.T) {
	f := newFixture(t)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := ssh.NewSignerFromKey(priv)
	f.srv.AuthorizeKey(signer.PublicKey())
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(f.dir, "id_ed25519")
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600)
	known := filepath.Join(f.dir, "known_hosts")
	_ = os.WriteFile(known, []byte(knownhosts.Line([]string{f.srv.Addr()}, f.srv.HostKey())+"\n"), 0o600)

	cfg := f.config()
	cfg.Password, cfg.PrivateKeyFile = "", keyFile
	cfg.HostKeyFingerprint, cfg.KnownHostsFile = "", known
	c := f.client(t, cfg)
	if _, err := c.Poll(context.Background(), PollOptions{}, nil); err != nil {
		t.Fatalf("key login with known_hosts: %v", err)
	}
	// A known_hosts file naming another key refuses the server.
	_, other, _ := ed25519.GenerateKey(rand.Reader)
	otherPub, _ := ssh.NewPublicKey(other.Public())
	_ = os.WriteFile(known, []byte(knownhosts.Line([]string{f.srv.Addr()}, otherPub)+"\n"), 0o600)
	c2 := f.client(t, cfg)
	if _, err := c2.Poll(context.Background(), PollOptions{}, nil); !errors.Is(err, ErrHostKey) {
		t.Fatalf("wrong known_hosts entry: %v, want ErrHostKey", err)
	}
}
