package funeral

import (
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/security/keys"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

func TestPartnerLifecycle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	kp := keys.NewFile(t.TempDir())
	now := time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC)
	iss, err := AddPartner(ctx, dir, kp, Partner{ID: "funeral.fh16", Name: "新殡仪馆", Role: RoleFuneralHome, Environments: []string{EnvSandbox}, AllowIPs: []string{"10.1.2.3"}}, now)
	if err != nil {
		t.Fatal(err)
	}
	if iss.KeyID != "fh16-k20261127093000" || len(iss.SecretHex) != 64 {
		t.Fatalf("issued %+v", iss)
	}
	stored, err := kp.Get(ctx, keys.PartnerPrefix+iss.KeyID)
	if err != nil || hex.EncodeToString(stored) != iss.SecretHex {
		t.Fatalf("key provider holds %x (%v)", stored, err)
	}
	b, _ := os.ReadFile(FileFor(dir, RoleFuneralHome))
	if strings.Contains(string(b), iss.SecretHex) || !strings.Contains(string(b), iss.KeyID) {
		t.Fatalf("registry file:\n%s", b)
	}
	if _, err := AddPartner(ctx, dir, kp, Partner{ID: "funeral.fh16", Name: "x", Role: RoleFuneralHome, Environments: []string{EnvSandbox}}, now); err == nil {
		t.Fatal("duplicate partner added")
	}
	rot, err := RotateKey(ctx, dir, kp, "funeral.fh16", false, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	reg, err := LoadRegistry(dir)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := reg.ByKey(iss.KeyID); p.ID != "funeral.fh16" {
		t.Fatal("old key dropped by a plain rotation")
	}
	if p, _ := reg.ByKey(rot.KeyID); p.ID != "funeral.fh16" {
		t.Fatal("new key not registered")
	}
	if _, err := RotateKey(ctx, dir, kp, "funeral.fh16", true, now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := SetDisabled(dir, "funeral.fh16", true); err != nil {
		t.Fatal(err)
	}
	reg, _ = LoadRegistry(dir)
	p, _ := reg.Partner("funeral.fh16")
	if !p.Disabled || len(p.KeyIDs) != 1 || p.Allowed(EnvSandbox) {
		t.Fatalf("after drop-old and disable: %+v", p)
	}
	if err := SetDisabled(dir, "funeral.nobody", true); err == nil {
		t.Fatal("disabled a partner that does not exist")
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
