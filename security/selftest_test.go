package security

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestSelfTestPasses(t *testing.T) {
	if err := SelfTest(); err != nil {
		t.Fatal(err)
	}
}

// flip changes the last hex digit of a vector, as a single corrupted bit in
// an implementation or a vector would.
func flip(s string) string {
	last := s[len(s)-1]
	repl := byte('0')
	if last == '0' {
		repl = '1'
	}
	return s[:len(s)-1] + string(repl)
}

// TestSelfTestCorruptedVectorFails shows that every check can fail: each case
// corrupts one published value and SelfTest's error must name that check.
func TestSelfTestCorruptedVectorFails(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(k *kat)
		want    string
	}{
		{"sm3 digest", func(k *kat) { k.sm3[0].digest = flip(k.sm3[0].digest) }, `SM3("abc")`},
		{"sm3 message", func(k *kat) { k.sm3[1].msg += "d" }, `SM3("abcdabcd`},
		{"sm4 ciphertext", func(k *kat) { k.sm4.cipher = flip(k.sm4.cipher) }, "SM4 (GB/T 32907 A.1): encrypt"},
		{"sm4 key", func(k *kat) { k.sm4.key = flip(k.sm4.key) }, "SM4 (GB/T 32907 A.1)"},
		{"sm4-gcm tag", func(k *kat) { k.gcm.sealed = flip(k.gcm.sealed) }, "SM4-GCM (RFC 8998 A.1): seal"},
		{"sm4-gcm aad", func(k *kat) { k.gcm.aad = flip(k.gcm.aad) }, "SM4-GCM (RFC 8998 A.1)"},
		{"sm2 public key", func(k *kat) { k.sm2.pubY = flip(k.sm2.pubY) }, "SM2 (GB/T 32918.5 A): public key"},
		{"sm2 ZA", func(k *kat) { k.sm2.za = flip(k.sm2.za) }, "SM2 (GB/T 32918.5 A): ZA"},
		{"sm2 uid", func(k *kat) { k.sm2.uid = "ALICE123@YAHOO.COM" }, "SM2 (GB/T 32918.5 A): ZA"},
		{"sm2 digest", func(k *kat) { k.sm2.e = flip(k.sm2.e) }, "SM2 (GB/T 32918.5 A): SM3(ZA || M)"},
		{"sm2 signature r", func(k *kat) { k.sm2.r = flip(k.sm2.r) }, "published signature does not verify"},
		{"sm2 signature s", func(k *kat) { k.sm2.s = flip(k.sm2.s) }, "published signature does not verify"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := standardKAT
			k.sm3 = slices.Clone(standardKAT.sm3)
			tc.corrupt(&k)
			err := k.run()
			if !errors.Is(err, ErrSelfTest) {
				t.Fatalf("run() = %v, want an error wrapping ErrSelfTest", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %q", err, tc.want)
			}
		})
	}
	if err := standardKAT.run(); err != nil {
		t.Fatalf("a case corrupted the shared vectors: %v", err)
	}
}

// TestSelfTestReportsEveryFailure: two broken checks give two reasons.
func TestSelfTestReportsEveryFailure(t *testing.T) {
	k := standardKAT
	k.sm4.cipher = flip(k.sm4.cipher)
	k.sm2.r = flip(k.sm2.r)
	err := k.run()
	for _, want := range []string{"SM4 (GB/T 32907 A.1)", "SM2 (GB/T 32918.5 A)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %s", err, want)
		}
	}
}

func BenchmarkSelfTest(b *testing.B) {
	for b.Loop() {
		if err := SelfTest(); err != nil {
			b.Fatal(err)
		}
	}
}
