package keys

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestProviders(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	f := NewFile(dir)
	if err := f.Put(ctx, "partner/funeral-01", []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if err := f.Put(ctx, "partner/funeral-01", []byte{9}); err == nil {
		t.Fatal("Put overwrote an existing key")
	}
	st, err := os.Stat(filepath.Join(dir, "partner", "funeral-01.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v %v", st, err)
	}
	env := NewEnv(func() []string {
		return []string{"PATH=/bin", "MZHUB_KEY_PARTNER__FUNERAL_01=010203", "MZHUB_KEY_FIELD__K1=00"}
	})
	for name, p := range map[string]Provider{"file": f, "env": env} {
		t.Run(name, func(t *testing.T) {
			k, err := p.Get(ctx, "partner/funeral-01")
			if err != nil || string(k) != "\x01\x02\x03" {
				t.Fatalf("Get = %x, %v", k, err)
			}
			if _, err := p.Get(ctx, "partner/nobody"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("missing key: %v", err)
			}
			if _, err := p.Get(ctx, "../etc/passwd"); !errors.Is(err, ErrBadName) {
				t.Fatalf("bad name: %v", err)
			}
			names, err := p.List(ctx, "partner/")
			if err != nil || len(names) != 1 || names[0] != "partner/funeral-01" {
				t.Fatalf("List = %v, %v", names, err)
			}
		})
	}
	if err := env.Put(ctx, "x", nil); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("env Put: %v", err)
	}
}

func TestInitAndRotate(t *testing.T) {
	ctx := context.Background()
	p := NewFile(t.TempDir())
	now := time.Date(2026, 11, 27, 20, 0, 0, 0, time.UTC)
	created, err := Init(ctx, p, now)
	if err != nil || len(created) != 5 {
		t.Fatalf("Init = %v, %v", created, err)
	}
	for _, name := range []string{BlindName, AuditName, DisbursementPersonName} {
		if k, err := p.Get(ctx, name); err != nil || len(k) != MACKeySize {
			t.Fatalf("%s: %d bytes, %v", name, len(k), err)
		}
	}
	again, err := Init(ctx, p, now)
	if err != nil || len(again) != 0 {
		t.Fatalf("second Init = %v, %v", again, err)
	}
	if _, err := SM2(ctx, p, SM2SignName); err != nil {
		t.Fatal(err)
	}
	n1, err := RotateField(ctx, p, now)
	if err != nil {
		t.Fatal(err)
	}
	n2, err := RotateField(ctx, p, now)
	if err != nil || n2 <= n1 {
		t.Fatalf("second rotation in the same second: %s after %s, %v", n2, n1, err)
	}
	field, _ := p.List(ctx, FieldPrefix)
	if len(field) != 3 || field[2] != n2 {
		t.Fatalf("field keys %v", field)
	}
	_, err = Init(ctx, NewEnv(func() []string { return nil }), now)
	if !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Init on env: %v", err)
	}
}
