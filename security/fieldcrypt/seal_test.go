package fieldcrypt

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealOpen(t *testing.T) {
	r := ring(t, "k1")
	payload := []byte(`{"id_number":"310101199001011234","account":"6222021234567890123"}`)
	for _, pt := range [][]byte{payload, {}, bytes.Repeat([]byte("x"), 1<<20)} {
		env, err := r.Seal(pt)
		if err != nil {
			t.Fatal(err)
		}
		if len(pt) > 0 && bytes.Contains(env, pt[:min(len(pt), 16)]) {
			t.Fatal("envelope holds the plaintext")
		}
		if SealedKID(env) != "k1" {
			t.Fatalf("kid %q", SealedKID(env))
		}
		got, err := r.Open(env)
		if err != nil || !bytes.Equal(got, pt) {
			t.Fatalf("open: %v (%d bytes, want %d)", err, len(got), len(pt))
		}
	}
	a, _ := r.Seal(payload)
	b, _ := r.Seal(payload)
	if bytes.Equal(a, b) {
		t.Error("two seals of one payload are equal: nonce reused")
	}

	cases := []struct {
		name string
		env  func() []byte
		want error
	}{
		{"flipped ciphertext bit", func() []byte { e := bytes.Clone(a); e[len(e)-20] ^= 1; return e }, ErrCiphertext},
		{"flipped tag bit", func() []byte { e := bytes.Clone(a); e[len(e)-1] ^= 1; return e }, ErrCiphertext},
		{"truncated", func() []byte { return a[:2+2+12+4] }, ErrCiphertext},
		{"kid changed", func() []byte { e := bytes.Clone(a); e[3] = '2'; return e }, ErrUnknownKey},
		{"plain text", func() []byte { return payload }, ErrCiphertext},
		{"empty", func() []byte { return nil }, ErrCiphertext},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := r.Open(c.env()); !errors.Is(err, c.want) {
				t.Errorf("err %v, want %v", err, c.want)
			}
		})
	}
}

// TestSealRotation: a payload sealed under an older key opens as long as
// the ring still holds it; new seals use the newest key.
func TestSealRotation(t *testing.T) {
	old, _ := ring(t, "k1").Seal([]byte("payload"))
	r2 := ring(t, "k1", "k2")
	if pt, err := r2.Open(old); err != nil || string(pt) != "payload" {
		t.Fatalf("old envelope after rotation: %q, %v", pt, err)
	}
	nw, _ := r2.Seal([]byte("payload"))
	if SealedKID(nw) != "k2" {
		t.Errorf("new seal under %q, want k2", SealedKID(nw))
	}
	if _, err := ring(t, "k2").Open(old); !errors.Is(err, ErrUnknownKey) {
		t.Errorf("retired key: %v", err)
	}
}

func FuzzOpen(f *testing.F) {
	r := ring(f, "k1")
	env, _ := r.Seal([]byte("body"))
	f.Add(env)
	f.Add([]byte{1, 2, 'k', '1'})
	f.Add([]byte{1, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		pt, err := r.Open(b)
		if err == nil && SealedKID(b) != "k1" {
			t.Fatalf("opened an envelope of key %q", SealedKID(b))
		}
		if err != nil && pt != nil {
			t.Fatal("plaintext with an error")
		}
	})
}

// BenchmarkSealOpen seals and opens one bus-sized body (256 bytes).
func BenchmarkSealOpen(b *testing.B) {
	r := ring(b, "k1")
	body := bytes.Repeat([]byte("x"), 256)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		env, _ := r.Seal(body)
		if _, err := r.Open(env); err != nil {
			b.Fatal(err)
		}
	}
}
