package funeral

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/security/audit"
	"github.com/shanghai-mca/mzhub/security/audit/audittest"
	"github.com/shanghai-mca/mzhub/security/fieldcrypt"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// testRing seals partner secrets in tests (SM4-GCM, as the hub's field keys).
func testRing(t testing.TB) *fieldcrypt.Ring {
	t.Helper()
	r, err := fieldcrypt.NewRing(map[string][]byte{"k1": bytes.Repeat([]byte{7}, 16)}, bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestPartnerStoreLifecycle: add, rotate, drop old keys, disable, enable
// through the state store; every change moves the version, is audited
// (failures as failures), secrets are sealed at rest and an import of an
// old file never brings back a revoked key or re-enables a partner.
func TestPartnerStoreLifecycle(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		rec := &audittest.Recorder{}
		ps, err := OpenPartnerStore(ctx, db, testRing(t), rec, nil)
		if err != nil {
			t.Fatal(err)
		}
		file := Partner{ID: "funeral.fh16", Name: "新殡仪馆", Role: RoleFuneralHome, Environments: []string{EnvSandbox},
			AllowIPs: []string{"10.1.2.3"}, KeyIDs: []string{"fh16-legacy"}}
		if res, err := ps.Import(ctx, []Partner{file}, "system:registry-file"); err != nil || res != (ImportResult{Added: 1, Keys: 1}) {
			t.Fatalf("import: %+v %v", res, err)
		}
		v0, _ := ps.Version(ctx)
		rot, err := ps.RotateKey(ctx, "funeral.fh16", false, "cli:alice")
		if err != nil || len(rot.SecretHex) != 64 {
			t.Fatalf("rotate: %+v %v", rot, err)
		}
		st, err := ps.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Version <= v0 || len(st.Partners) != 1 || len(st.Partners[0].KeyIDs) != 2 {
			t.Fatalf("after rotation: %+v", st)
		}
		if _, held := st.Secrets["fh16-legacy"]; held {
			t.Fatal("an imported key's secret should stay in the key provider")
		}
		if hex.EncodeToString(st.Secrets[rot.KeyID]) != rot.SecretHex {
			t.Fatal("issued secret not held by the store")
		}
		var sealed string
		if err := db.QueryRowContext(ctx, db.Rebind(`SELECT secret FROM funeral_partner_keys WHERE key_id = ?`), rot.KeyID).Scan(&sealed); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(sealed, rot.SecretHex) || fieldcrypt.KID(sealed) != "k1" {
			t.Fatalf("secret not sealed at rest: %q", sealed)
		}
		if n, err := ps.DropOldKeys(ctx, "funeral.fh16", "cli:alice"); err != nil || n != 1 {
			t.Fatalf("drop old: %d %v", n, err)
		}
		if err := ps.SetDisabled(ctx, "funeral.fh16", true, "cli:alice"); err != nil {
			t.Fatal(err)
		}
		// The old file again (legacy key listed, not disabled): nothing comes back.
		if _, err := ps.Import(ctx, []Partner{file}, "system:registry-file"); err != nil {
			t.Fatal(err)
		}
		st, _ = ps.Load(ctx)
		p := st.Partners[0]
		if !p.Disabled || len(p.KeyIDs) != 1 || p.KeyIDs[0] != rot.KeyID {
			t.Fatalf("after drop-old, disable and a re-import: %+v", p)
		}
		// A file can disable, never enable.
		if err := ps.SetDisabled(ctx, "funeral.fh16", false, "cli:alice"); err != nil {
			t.Fatal(err)
		}
		file.Disabled = true
		if res, err := ps.Import(ctx, []Partner{file}, "system:registry-file"); err != nil || res.Disabled != 1 {
			t.Fatalf("disabled in the file: %+v %v", res, err)
		}
		if _, err := ps.Add(ctx, Partner{ID: "funeral.fh16", Name: "x", Role: RoleFuneralHome, Environments: []string{EnvSandbox}}, "cli:alice"); !errors.Is(err, ErrPartnerExists) {
			t.Fatalf("duplicate add: %v", err)
		}
		if err := ps.SetDisabled(ctx, "funeral.nobody", true, "cli:alice"); !errors.Is(err, ErrPartnerNotFound) {
			t.Fatalf("disable of an unknown partner: %v", err)
		}
		for _, want := range []struct{ action, outcome string }{
			{"partner.import", audit.OutcomeSuccess}, {"partner.rotate_key", audit.OutcomeSuccess},
			{"partner.drop_old_keys", audit.OutcomeSuccess}, {"partner.disable", audit.OutcomeSuccess},
			{"partner.enable", audit.OutcomeSuccess}, {"partner.add", audit.OutcomeFailure}, {"partner.disable", audit.OutcomeFailure},
		} {
			if !rec.Has(want.action, want.outcome, "") {
				t.Errorf("no audit record %s %s in %+v", want.action, want.outcome, rec.Records())
			}
		}
	})
}

// TestAppendToFileKeepsComments: partner add edits the registry file in
// place; comments, order and quoting stay.
func TestAppendToFileKeepsComments(t *testing.T) {
	dir := t.TempDir()
	orig, err := os.ReadFile("../../configs/partners/funeral/funeral-homes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	name := FileFor(dir, RoleFuneralHome)
	if err := os.WriteFile(name, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	p := Partner{ID: "funeral.fh16", Name: "新殡仪馆", Role: RoleFuneralHome, Environments: []string{EnvSandbox},
		AllowIPs: []string{"10.1.2.3"}, BookingURL: "https://fh16.example/booking", BookingKeyID: "hub-fh16", KeyIDs: []string{"not-written"}}
	if err := AppendToFile(dir, p); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(name)
	if !bytes.HasPrefix(got, bytes.TrimRight(orig, "\n")) {
		t.Fatalf("the existing text changed:\n%s", got)
	}
	if bytes.Contains(got, []byte("not-written")) || !bytes.Contains(got, []byte("booking_url: https://fh16.example/booking")) {
		t.Fatalf("appended entry:\n%s", got[len(orig)-1:])
	}
	reg, err := LoadRegistry(dir)
	if err != nil {
		t.Fatal(err)
	}
	if q, ok := reg.Partner("funeral.fh16"); !ok || q.BookingKeyID != "hub-fh16" {
		t.Fatalf("partner in the edited file: %+v", q)
	}
	if err := AppendToFile(dir, p); err == nil {
		t.Fatal("a second entry with the same id was written")
	}
	// A new role file is created with the header.
	if err := AppendToFile(dir, Partner{ID: "cemetery.cm77", Name: "新公墓", Role: RoleCemetery, Environments: []string{EnvSandbox}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(FileFor(dir, RoleCemetery)); !bytes.HasPrefix(b, []byte(fileHeader)) {
		t.Fatalf("new file:\n%s", b)
	}
}

func TestRegistryValidation(t *testing.T) {
	_, err := NewRegistry([]Partner{
		{ID: "bank.boc", Name: "x", Role: RoleFuneralHome, Environments: []string{EnvSandbox}},
		{ID: "funeral.fh01", Name: "", Role: "crematorium", Environments: []string{"staging"}, AllowIPs: []string{"not-an-ip"}},
	})
	for _, want := range []string{"id: want", "name: required", "role \"crematorium\"", "\"staging\"", "not-an-ip"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q in %v", want, err)
		}
	}
}

func TestGroupCommitWait(t *testing.T) {
	ctx := context.Background()
	st, err := OpenStore(ctx, storetest.Open(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	st.SetGroupCommitWait(300 * time.Millisecond)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if _, err := st.Apply(ctx, Write{PartnerID: "funeral.fh01", Kind: KindHall, ID: fmt.Sprintf("H-%d", i), Version: 1, Hash: "h", Data: []byte(`{}`)}); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	ws := st.WriterStats()
	if ws.Writes != 20 || ws.Batches > 5 {
		t.Fatalf("%d writes in %d transactions; the wait should group them", ws.Writes, ws.Batches)
	}
}

// TestPartnerImportByReplicasAtOnce: replicas starting together import
// the same files; none fails on the others' rows.
func TestPartnerImportByReplicasAtOnce(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		ps := []Partner{{ID: "funeral.fh16", Name: "新殡仪馆", Role: RoleFuneralHome, Environments: []string{EnvSandbox}, KeyIDs: []string{"fh16-legacy"}},
			{ID: "cemetery.cm16", Name: "新公墓", Role: RoleCemetery, Environments: []string{EnvSandbox}}}
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			st, err := OpenPartnerStore(ctx, db, testRing(t), &audittest.Recorder{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := st.Import(ctx, ps, "system:registry-file")
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("a replica's import failed: %v", err)
			}
		}
		st, _ := OpenPartnerStore(ctx, db, testRing(t), &audittest.Recorder{}, nil)
		state, err := st.Load(ctx)
		if err != nil || len(state.Partners) != 2 || len(state.Partners[1].KeyIDs) != 1 {
			t.Fatalf("after concurrent imports: %+v %v", state, err)
		}
	})
}
