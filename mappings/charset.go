package mappings

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// Charset names accepted in layouts.
const (
	CharsetUTF8    = "UTF-8"
	CharsetGBK     = "GBK"
	CharsetGB18030 = "GB18030"
)

// codec converts between a file charset and UTF-8. Appending methods reuse
// the caller's buffers so that the hot path does not allocate.
type codec interface {
	// decode appends the UTF-8 form of src to dst. It fails with
	// ErrSplitMultibyte when src ends inside a multibyte character.
	decode(dst, src []byte) ([]byte, error)
	// decodeSame is decode that also reports whether encode gives src
	// back from what was appended (false when it cannot tell).
	decodeSame(dst, src []byte) ([]byte, bool, error)
	// encode appends the charset form of s to dst.
	encode(dst []byte, s string) ([]byte, error)
	// charLen returns the byte length of the character starting at src[0]
	// (0 if src is empty, -1 if src is cut inside the character).
	charLen(src []byte) int
	// name is the canonical charset name.
	name() string
}

func codecFor(name string) (codec, error) {
	switch strings.ToUpper(strings.ReplaceAll(name, "_", "-")) {
	case "", "UTF-8", "UTF8":
		return utf8Codec{}, nil
	case "GBK", "CP936":
		return gbkTables(false), nil
	case "GB18030":
		return gbkTables(true), nil
	}
	return nil, fmt.Errorf("%w: unknown charset %q (want GBK, GB18030 or UTF-8)", ErrSpec, name)
}

type utf8Codec struct{}

func (utf8Codec) name() string { return CharsetUTF8 }

// decodeSame is decode: encode copies the text back.
func (c utf8Codec) decodeSame(dst, src []byte) ([]byte, bool, error) {
	out, err := c.decode(dst, src)
	return out, err == nil, err
}

func (utf8Codec) decode(dst, src []byte) ([]byte, error) {
	if utf8.Valid(src) {
		return append(dst, src...), nil
	}
	for i := 0; i < len(src); {
		b := src[i]
		if b < utf8.RuneSelf {
			i++
			continue
		}
		if !utf8.FullRune(src[i:]) {
			return dst, ErrSplitMultibyte
		}
		r, n := utf8.DecodeRune(src[i:])
		if r == utf8.RuneError && n == 1 {
			return dst, fmt.Errorf("%w: %w: UTF-8 byte %02X at byte %d", ErrField, ErrCharset, src[i], i)
		}
		i += n
	}
	return append(dst, src...), nil
}

func (utf8Codec) encode(dst []byte, s string) ([]byte, error) { return append(dst, s...), nil }

func (utf8Codec) charLen(src []byte) int {
	if len(src) == 0 {
		return 0
	}
	if src[0] < utf8.RuneSelf {
		return 1
	}
	if !utf8.FullRune(src) {
		return -1
	}
	_, n := utf8.DecodeRune(src)
	return n
}

// gbkCodec decodes and encodes GBK or GB18030 with lookup tables built once
// from golang.org/x/text. Two-byte sequences go through the tables; the rare
// four-byte GB18030 sequences and single 0x80 fall back to x/text.
type gbkCodec struct {
	gb18030 bool
	enc     encoding.Encoding
	// dec2 maps (lead-0x81)*191 + (trail-0x40) to a rune (0 if invalid).
	dec2 []rune
	// dec2u maps the same index to the character's UTF-8 bytes, packed as
	// length<<24 | b0<<16 | b1<<8 | b2, so that the decoder copies bytes
	// instead of encoding runes; 0 if invalid, longer than three bytes, or
	// if the character is not encoded back as the same two bytes (GBK A2E3
	// and A3A0), which then go through dec2.
	dec2u []uint32
	// enc2 maps a BMP rune to its two-byte code (0 if none).
	enc2 []uint16
}

var (
	gbkOnce, gb18030Once sync.Once
	gbkCodecV, gb18030V  *gbkCodec
)

func gbkTables(gb18030 bool) *gbkCodec {
	if gb18030 {
		gb18030Once.Do(func() { gb18030V = buildGBK(true) })
		return gb18030V
	}
	gbkOnce.Do(func() { gbkCodecV = buildGBK(false) })
	return gbkCodecV
}

func buildGBK(gb18030 bool) *gbkCodec {
	c := &gbkCodec{gb18030: gb18030, enc: simplifiedchinese.GBK}
	if gb18030 {
		c.enc = simplifiedchinese.GB18030
	}
	c.dec2 = make([]rune, 126*191)
	c.dec2u = make([]uint32, 126*191)
	c.enc2 = make([]uint16, 65536)
	dec := c.enc.NewDecoder()
	var src [2]byte
	dst := make([]byte, 8)
	for lead := 0x81; lead <= 0xFE; lead++ {
		for trail := 0x40; trail <= 0xFE; trail++ {
			if trail == 0x7F {
				continue
			}
			src[0], src[1] = byte(lead), byte(trail)
			dec.Reset()
			n, _, err := dec.Transform(dst, src[:], true)
			if err != nil {
				continue
			}
			r, size := utf8.DecodeRune(dst[:n])
			if r == utf8.RuneError || size != n {
				continue
			}
			c.dec2[(lead-0x81)*191+trail-0x40] = r
			if n <= 3 {
				var u [3]byte
				copy(u[:], dst[:n])
				c.dec2u[(lead-0x81)*191+trail-0x40] = uint32(n)<<24 | uint32(u[0])<<16 | uint32(u[1])<<8 | uint32(u[2])
			}
		}
	}
	// The encode table is taken from the x/text encoder itself, so that the
	// fast path writes exactly what x/text would.
	enc := c.enc.NewEncoder()
	var rb [4]byte
	out := make([]byte, 8)
	for _, r := range c.dec2 {
		if r == 0 || r > 0xFFFF || c.enc2[r] != 0 {
			continue
		}
		n := utf8.EncodeRune(rb[:], r)
		enc.Reset()
		m, _, err := enc.Transform(out, rb[:n], true)
		if err != nil || m != 2 {
			continue
		}
		c.enc2[r] = uint16(out[0])<<8 | uint16(out[1])
	}
	for i, r := range c.dec2 {
		if r != 0 && (r > 0xFFFF || int(c.enc2[r]) != (i/191+0x81)<<8|(i%191+0x40)) {
			c.dec2u[i] = 0
		}
	}
	return c
}

func (c *gbkCodec) name() string {
	if c.gb18030 {
		return CharsetGB18030
	}
	return CharsetGBK
}

func (c *gbkCodec) charLen(src []byte) int {
	if len(src) == 0 {
		return 0
	}
	b := src[0]
	if b < 0x81 || b == 0xFF {
		return 1
	}
	if len(src) < 2 {
		return -1
	}
	if c.gb18030 && src[1] >= 0x30 && src[1] <= 0x39 {
		if len(src) < 4 {
			return -1
		}
		return 4
	}
	return 2
}

func (c *gbkCodec) decode(dst, src []byte) ([]byte, error) {
	out, _, err := c.decodeSame(dst, src)
	return out, err
}

// decodeSame is decode; the text encodes back to src when every character
// went through dec2u (or is ASCII).
func (c *gbkCodec) decodeSame(dst, src []byte) ([]byte, bool, error) {
	if isASCII(src) {
		// Most fields of a bank file (numbers, IDs, codes) are ASCII.
		return append(dst, src...), true, nil
	}
	same := true
	for i := 0; i < len(src); {
		b := src[i]
		if b < 0x80 {
			j := i + 1 + asciiLen(src[i+1:])
			dst = append(dst, src[i:j]...)
			i = j
			continue
		}
		if i+1 < len(src) && b != 0x80 && b != 0xFF {
			t := src[i+1]
			if t >= 0x40 && t != 0x7F && t != 0xFF {
				// The common case: a two-byte character, copied as UTF-8
				// from the table.
				if u := c.dec2u[int(b-0x81)*191+int(t-0x40)]; u != 0 {
					switch u >> 24 {
					case 3:
						dst = append(dst, byte(u>>16), byte(u>>8), byte(u))
					case 2:
						dst = append(dst, byte(u>>16), byte(u>>8))
					default:
						dst = append(dst, byte(u>>16))
					}
					i += 2
					continue
				}
			}
		}
		same = false
		n := c.charLen(src[i:])
		if n < 0 {
			return dst, false, ErrSplitMultibyte
		}
		if n == 2 {
			t := src[i+1]
			if t >= 0x40 && t != 0x7F && t != 0xFF {
				if r := c.dec2[int(b-0x81)*191+int(t-0x40)]; r != 0 {
					dst = utf8.AppendRune(dst, r)
					i += 2
					continue
				}
			}
			// The table holds every valid double byte: x/text would
			// decode this pair (81 7F, say) as U+FFFD followed by the
			// second byte, silently.
			return dst, false, fmt.Errorf("%w: %w: %s bytes %02X %02X at byte %d", ErrField, ErrCharset, c.name(), b, t, i)
		}
		// Slow path: 0x80, four-byte GB18030, or an invalid sequence.
		s, err := c.enc.NewDecoder().Bytes(src[i : i+n])
		if err != nil || (len(s) == 3 && string(s) == "\uFFFD") || (n == 1 && strings.ContainsRune(string(s), utf8.RuneError)) {
			return dst, false, fmt.Errorf("%w: %w: %s byte sequence % X at byte %d", ErrField, ErrCharset, c.name(), src[i:i+n], i)
		}
		dst = append(dst, s...)
		i += n
	}
	return dst, same, nil
}

// asciiLen returns the length of the run of ASCII bytes at the start of b,
// testing eight bytes at a time.
func asciiLen(b []byte) int {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:])&0x8080808080808080 != 0 {
			break
		}
	}
	for i < len(b) && b[i] < 0x80 {
		i++
	}
	return i
}

// isASCII reports whether every byte of b is ASCII, reading whole words:
// the last word overlaps the one before it instead of a byte loop.
func isASCII(b []byte) bool {
	const hi8, hi4 = 0x8080808080808080, 0x80808080
	n := len(b)
	switch {
	case n >= 8:
		for i := 0; i+8 <= n; i += 8 {
			if binary.LittleEndian.Uint64(b[i:])&hi8 != 0 {
				return false
			}
		}
		return binary.LittleEndian.Uint64(b[n-8:])&hi8 == 0
	case n >= 4:
		return (binary.LittleEndian.Uint32(b)|binary.LittleEndian.Uint32(b[n-4:]))&hi4 == 0
	case n > 0:
		return (b[0]|b[n/2]|b[n-1])&0x80 == 0
	}
	return true
}

// isASCIIString is isASCII of a string, read through a read-only view of
// its bytes (nothing writes to it).
func isASCIIString(s string) bool {
	return isASCII(unsafe.Slice(unsafe.StringData(s), len(s)))
}

// asciiLenString is asciiLen of a string, read through a read-only view of
// its bytes (nothing writes to it).
func asciiLenString(s string) int {
	return asciiLen(unsafe.Slice(unsafe.StringData(s), len(s)))
}

func (c *gbkCodec) encode(dst []byte, s string) ([]byte, error) {
	if isASCIIString(s) {
		return append(dst, s...), nil
	}
	dst = slices.Grow(dst, len(s))
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			j := i + 1 + asciiLenString(s[i+1:])
			dst = append(dst, s[i:j]...)
			i = j
			continue
		}
		var r rune
		var n int
		if b&0xF0 == 0xE0 && i+2 < len(s) {
			// Three-byte UTF-8, where all CJK characters live.
			r, n = rune(b&0x0F)<<12|rune(s[i+1]&0x3F)<<6|rune(s[i+2]&0x3F), 3
			if s[i+1]&0xC0 != 0x80 || s[i+2]&0xC0 != 0x80 || r < 0x800 {
				r, n = utf8.DecodeRuneInString(s[i:])
			}
		} else {
			r, n = utf8.DecodeRuneInString(s[i:])
		}
		if r <= 0xFFFF {
			if code := c.enc2[r]; code != 0 {
				k := len(dst)
				if k+2 <= cap(dst) {
					dst = dst[:k+2]
					dst[k], dst[k+1] = byte(code>>8), byte(code)
				} else {
					dst = append(dst, byte(code>>8), byte(code))
				}
				i += n
				continue
			}
		}
		out, err := c.enc.NewEncoder().Bytes([]byte(s[i : i+n]))
		if err != nil || r == utf8.RuneError {
			return dst, fmt.Errorf("%w: %q in %s", ErrEncode, r, c.name())
		}
		dst = append(dst, out...)
		i += n
	}
	return dst, nil
}
