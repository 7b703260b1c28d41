package mappings

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// charsetCases are the table-driven codecs and the x/text encodings they
// must agree with byte for byte.
var charsetCases = []struct {
	name string
	c    *gbkCodec
	ref  encoding.Encoding
}{
	{"GBK", gbkTables(false), simplifiedchinese.GBK},
	{"GB18030", gbkTables(true), simplifiedchinese.GB18030},
}

// refDecode decodes src with x/text; ok is false when x/text reports an
// error or substitutes U+FFFD (the hub refuses such bytes).
func refDecode(ref encoding.Encoding, src []byte) (string, bool) {
	out, err := ref.NewDecoder().Bytes(src)
	if err != nil || bytes.ContainsRune(out, utf8.RuneError) {
		return "", false
	}
	return string(out), true
}

// TestGBKDecodeTableMatchesXText decodes every two-byte sequence (lead
// 0x81-0xFE, trail 0x40-0xFE) through the table fast path, alone and
// between ASCII runs of every length around the eight-byte stride of the
// ASCII scan, and compares the result with golang.org/x/text: the same
// UTF-8 where x/text decodes the pair, an error where it does not.
func TestGBKDecodeTableMatchesXText(t *testing.T) {
	for _, tc := range charsetCases {
		t.Run(tc.name, func(t *testing.T) {
			valid, bad := 0, 0
			for lead := 0x81; lead <= 0xFE; lead++ {
				for trail := 0x40; trail <= 0xFE; trail++ {
					pair := []byte{byte(lead), byte(trail)}
					want, ok := refDecode(tc.ref, pair)
					if ok && utf8.RuneCountInString(want) != 1 {
						ok = false // x/text took the pair as two characters (trail 0x7F, 0xFF)
					}
					got, err := tc.c.decode(nil, pair)
					if !ok {
						bad++
						if err == nil {
							t.Errorf("% X: decoded to %q, x/text refuses it", pair, got)
						}
						continue
					}
					valid++
					if err != nil || string(got) != want {
						t.Errorf("% X: got %q, %v; x/text gives %q", pair, got, err, want)
						continue
					}
					// The same character inside ASCII text.
					pre, post := strings.Repeat("a", lead%11), strings.Repeat("b", trail%13)
					in := append(append([]byte(pre), pair...), post...)
					if got, err := tc.c.decode([]byte("x"), in); err != nil || string(got) != "x"+pre+want+post {
						t.Errorf("%q: got %q, %v; want %q", in, got, err, "x"+pre+want+post)
					}
				}
			}
			// GBK defines 21,886 characters in its two-byte area; the count
			// keeps the test from passing on an empty range.
			if valid < 21000 || bad == 0 {
				t.Fatalf("%d valid and %d invalid pairs compared: the loop did not cover the table", valid, bad)
			}
		})
	}
}

// TestGBKEncodeTableMatchesXText encodes every BMP code point (surrogates
// aside) through the table fast path, alone and inside ASCII text, and
// compares the bytes with golang.org/x/text's encoder; a code point x/text
// cannot encode must fail. U+FFFD is refused whatever x/text does with it:
// it stands for bytes that were already lost.
func TestGBKEncodeTableMatchesXText(t *testing.T) {
	for _, tc := range charsetCases {
		t.Run(tc.name, func(t *testing.T) {
			fast := 0
			for r := rune(0); r <= 0xFFFF; r++ {
				if r >= 0xD800 && r <= 0xDFFF {
					continue
				}
				s := string(r)
				got, err := tc.c.encode(nil, s)
				if r == utf8.RuneError {
					if err == nil {
						t.Errorf("U+FFFD encoded to % X, want an error", got)
					}
					continue
				}
				want, werr := tc.ref.NewEncoder().Bytes([]byte(s))
				if werr != nil {
					if err == nil {
						t.Errorf("U+%04X: encoded to % X, x/text refuses it (%v)", r, got, werr)
					}
					continue
				}
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("U+%04X: got % X, %v; x/text gives % X", r, got, err, want)
					continue
				}
				if tc.c.enc2[r] != 0 {
					fast++
				}
				pre, post := strings.Repeat("a", int(r%11)), strings.Repeat("b", int(r%17))
				got, err = tc.c.encode([]byte("x"), pre+s+post)
				if w := "x" + pre + string(want) + post; err != nil || string(got) != w {
					t.Errorf("U+%04X in ASCII: got % X, %v; want % X", r, got, err, w)
				}
			}
			if fast < 21000 {
				t.Fatalf("only %d code points went through the table", fast)
			}
		})
	}
}

// TestASCIILen checks the eight-byte ASCII scans at every position of a
// non-ASCII byte.
func TestASCIILen(t *testing.T) {
	for n := 0; n <= 40; n++ {
		for at := 0; at <= n; at++ {
			b := bytes.Repeat([]byte{'7'}, n)
			if at < n {
				b[at] = 0xC4
			}
			if got := asciiLen(b); got != at {
				t.Errorf("asciiLen(len %d, non-ASCII at %d) = %d", n, at, got)
			}
			if got := asciiLenString(string(b)); got != at {
				t.Errorf("asciiLenString(len %d, non-ASCII at %d) = %d", n, at, got)
			}
		}
	}
}

// TestIsASCII compares the word-at-a-time test with a byte loop, for every
// length up to 40 and a high byte at every place.
func TestIsASCII(t *testing.T) {
	for n := 0; n <= 40; n++ {
		b := bytes.Repeat([]byte{'a'}, n)
		if !isASCII(b) || !isASCIIString(string(b)) {
			t.Fatalf("isASCII(%d ASCII bytes) = false", n)
		}
		for i := 0; i < n; i++ {
			for _, c := range []byte{0x80, 0xD5, 0xFF} {
				b[i] = c
				if isASCII(b) || isASCIIString(string(b)) {
					t.Fatalf("isASCII(%q) = true", b)
				}
			}
			b[i] = 'a'
		}
	}
}

// TestDecodeSameEncodesBack decodes every two-byte sequence of GBK and
// GB18030 (alone and between ASCII), single bytes and four-byte GB18030
// samples: whenever decodeSame says the text encodes back to the same
// bytes, encode must give them.
func TestDecodeSameEncodesBack(t *testing.T) {
	for _, name := range []string{CharsetGBK, CharsetGB18030, CharsetUTF8} {
		c, err := codecFor(name)
		if err != nil {
			t.Fatal(err)
		}
		var srcs [][]byte
		for lead := 0x80; lead <= 0xFF; lead++ {
			srcs = append(srcs, []byte{byte(lead)})
			for trail := 0x30; trail <= 0xFF; trail++ {
				srcs = append(srcs, []byte{byte(lead), byte(trail)}, []byte{'a', byte(lead), byte(trail), 'b'})
			}
		}
		for _, s := range []string{"\x81\x30\x81\x30", "\x84\x31\xa4\x39", "\x90\x30\x81\x30", "张伟", "😀", "\xe2\x82\xac"} {
			srcs = append(srcs, []byte(s))
		}
		same := 0
		for _, src := range srcs {
			dec, ok, err := c.decodeSame(nil, src)
			if err != nil || !ok {
				continue
			}
			same++
			if enc, err := c.encode(nil, string(dec)); err != nil || !bytes.Equal(enc, src) {
				t.Fatalf("%s: % X decodes to %q, which encodes to % X (%v)", name, src, dec, enc, err)
			}
		}
		if same < 40000 && name != CharsetUTF8 {
			t.Fatalf("%s: only %d of %d sequences encode back", name, same, len(srcs))
		}
		t.Logf("%s: %d of %d sequences encode back", name, same, len(srcs))
	}
}
