package security

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"

	"github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/sm3"
	"github.com/emmansun/gmsm/sm4"
	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// kat holds the published known-answer vectors the self test checks, as
// hex strings exactly as the standards print them. A test corrupts a copy to
// show that each check can fail.
type kat struct {
	// sm3 maps a message to its SM3 digest (GB/T 32905-2016 Appendix A).
	sm3 []sm3Vector
	// sm4 is the single-block example of GB/T 32907-2016 Appendix A.
	sm4 sm4Vector
	// gcm is the SM4-GCM example of RFC 8998 Appendix A.1 (field encryption uses SM4-GCM).
	gcm gcmVector
	// sm2 is the signature example on the recommended curve of GB/T 32918.5-2017 (GM/T 0003.5-2012) Appendix A.
	sm2 sm2Vector
}

type sm3Vector struct{ msg, digest string }

type sm4Vector struct{ key, plain, cipher string }

type gcmVector struct{ key, nonce, aad, plain, sealed string }

type sm2Vector struct {
	priv, pubX, pubY string // private key d and public key (x, y)
	uid, msg         string // signer id and message, as text
	za, e            string // ZA and e = SM3(ZA || M)
	r, s             string // the signature
}

// standardKAT is what SelfTest checks.
var standardKAT = kat{
	sm3: []sm3Vector{
		{"abc", "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"},
		{"abcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcdabcd", "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"},
	},
	sm4: sm4Vector{
		key:    "0123456789abcdeffedcba9876543210",
		plain:  "0123456789abcdeffedcba9876543210",
		cipher: "681edf34d206965e86b3e94f536e4246",
	},
	gcm: gcmVector{
		key:   "0123456789ABCDEFFEDCBA9876543210",
		nonce: "00001234567800000000ABCD",
		aad:   "FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2",
		plain: "AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD" +
			"EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA",
		sealed: "17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735" +
			"D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D" +
			"83DE3541E4C2B58177E065A9BF7B62EC",
	},
	sm2: sm2Vector{
		priv: "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8",
		pubX: "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020",
		pubY: "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13",
		uid:  "1234567812345678",
		msg:  "message digest",
		za:   "B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3",
		e:    "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640",
		r:    "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3",
		s:    "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA",
	},
}

// SelfTest runs known-answer tests of the national algorithms the hub relies
// on, through the same library calls the hub uses: SM3 digests, SM4 (one
// block and SM4-GCM), and SM2 (the published signature verifies, a changed
// message does not, ZA and SM3(ZA || M) match, and a fresh signature with the
// published key verifies), after the library's own self tests. It takes a
// few milliseconds and touches no key of the hub.
//
// The hub calls it at start-up (hub.New) and `mzhub keys` before any key
// work; an error wraps ErrSelfTest and names every check that failed.
func SelfTest() error { return standardKAT.run() }

func (k kat) run() error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrSelfTest}, args...)...))
	}
	for _, lib := range []struct {
		name string
		test func() error
	}{{"sm2", sm2.SelfTest}, {"sm3", sm3.SelfTest}, {"sm4", sm4.SelfTest}} {
		if err := lib.test(); err != nil {
			fail("gmsm %s: %v", lib.name, err)
		}
	}
	for _, v := range k.sm3 {
		if got := sm3.Sum([]byte(v.msg)); !bytes.Equal(got[:], unhex(v.digest)) {
			fail("SM3(%q) = %x, want %s", v.msg, got, v.digest)
		}
	}
	if err := k.sm4.check(); err != nil {
		fail("SM4 (GB/T 32907 A.1): %v", err)
	}
	if err := k.gcm.check(); err != nil {
		fail("SM4-GCM (RFC 8998 A.1): %v", err)
	}
	if err := k.sm2.check(); err != nil {
		fail("SM2 (GB/T 32918.5 A): %v", err)
	}
	return errors.Join(errs...)
}

func (v sm4Vector) check() error {
	c, err := sm4.NewCipher(unhex(v.key))
	if err != nil {
		return err
	}
	got := make([]byte, sm4.BlockSize)
	c.Encrypt(got, unhex(v.plain))
	if !bytes.Equal(got, unhex(v.cipher)) {
		return fmt.Errorf("encrypt = %x, want %s", got, v.cipher)
	}
	c.Decrypt(got, unhex(v.cipher))
	if !bytes.Equal(got, unhex(v.plain)) {
		return fmt.Errorf("decrypt = %x, want %s", got, v.plain)
	}
	return nil
}

func (v gcmVector) check() error {
	c, err := sm4.NewCipher(unhex(v.key))
	if err != nil {
		return err
	}
	aead, err := cipher.NewGCM(c)
	if err != nil {
		return err
	}
	nonce, aad, sealed := unhex(v.nonce), unhex(v.aad), unhex(v.sealed)
	if got := aead.Seal(nil, nonce, unhex(v.plain), aad); !bytes.Equal(got, sealed) {
		return fmt.Errorf("seal = %x, want %s", got, v.sealed)
	}
	plain, err := aead.Open(nil, nonce, sealed, aad)
	if err != nil || !bytes.Equal(plain, unhex(v.plain)) {
		return fmt.Errorf("open of the published ciphertext failed (%v)", err)
	}
	sealed[0] ^= 1
	if _, err := aead.Open(nil, nonce, sealed, aad); err == nil {
		return errors.New("open accepted a changed ciphertext")
	}
	return nil
}

func (v sm2Vector) check() error {
	priv, err := sm2.NewPrivateKey(unhex(v.priv))
	if err != nil {
		return fmt.Errorf("private key: %w", err)
	}
	pub := &priv.PublicKey
	if pub.X.Cmp(unint(v.pubX)) != 0 || pub.Y.Cmp(unint(v.pubY)) != 0 {
		return fmt.Errorf("public key = (%x, %x), want (%s, %s)", pub.X, pub.Y, v.pubX, v.pubY)
	}
	uid, msg := []byte(v.uid), []byte(v.msg)
	za, err := sm2.CalculateZA(pub, uid)
	if err != nil || !bytes.Equal(za, unhex(v.za)) {
		return fmt.Errorf("ZA = %x (%v), want %s", za, err, v.za)
	}
	h, err := sm2.NewHashWithUserID(pub, uid)
	if err != nil {
		return fmt.Errorf("hash with ZA: %w", err)
	}
	_, _ = h.Write(msg)
	e := h.Sum(nil)
	if !bytes.Equal(e, unhex(v.e)) {
		return fmt.Errorf("SM3(ZA || M) = %x, want %s", e, v.e)
	}
	sig, err := derSignature(unhex(v.r), unhex(v.s))
	if err != nil {
		return err
	}
	if !sm2.VerifyASN1(pub, e, sig) || !sm2.VerifyASN1WithSM2(pub, uid, msg, sig) {
		return errors.New("the published signature does not verify")
	}
	if sm2.VerifyASN1WithSM2(pub, uid, []byte(v.msg+"."), sig) {
		return errors.New("the published signature verifies a changed message")
	}
	fresh, err := sm2.SignASN1(rand.Reader, priv, e, nil)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	if !sm2.VerifyASN1(pub, e, fresh) {
		return errors.New("a fresh signature does not verify")
	}
	e[0] ^= 1
	if sm2.VerifyASN1(pub, e, fresh) {
		return errors.New("a fresh signature verifies a changed digest")
	}
	return nil
}

// derSignature encodes (r, s) as the ASN.1 SEQUENCE the hub's signature
// files carry.
func derSignature(r, s []byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddASN1(asn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1BigInt(new(big.Int).SetBytes(r))
		b.AddASN1BigInt(new(big.Int).SetBytes(s))
	})
	der, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encode signature: %w", err)
	}
	return der, nil
}

// unhex decodes a vector's hex; a malformed vector decodes to nothing, which
// then fails its comparison.
func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil
	}
	return b
}

func unint(s string) *big.Int { return new(big.Int).SetBytes(unhex(s)) }
