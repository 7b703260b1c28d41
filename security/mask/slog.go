package mask

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
)

// keyKind maps attribute keys (lower case, any group) to how their string
// value is masked whatever it looks like. Keys not listed still have their
// values scanned by Text.
var keyKind = map[string]func(string) string{
	"id_number": IDNumber, "id_no": IDNumber, "idno": IDNumber, "id_card": IDNumber,
	"idcard": IDNumber, "sfzh": IDNumber, "resident_id": IDNumber, "cert_no": IDNumber,
	"account": Account, "account_no": Account, "account_number": Account, "acct_no": Account,
	"card_no": Account, "card_number": Account, "bank_account": Account, "zh": Account,
	"phone": Phone, "mobile": Phone, "tel": Phone, "telephone": Phone, "phone_number": Phone, "sjhm": Phone,
	"person_name": Name, "real_name": Name, "holder_name": Name, "account_name": Name, "xm": Name,
}

// KeyMasker returns the masking function for an attribute key and whether
// the key is one NewHandler always masks.
func KeyMasker(key string) (func(string) string, bool) {
	f, ok := keyKind[strings.ToLower(key)]
	return f, ok
}

// Handler wraps a slog.Handler and masks every record before passing it on:
// the message and every string, error or Stringer value go through Text, and
// values under a known key (id_number, account_no, phone, person_name, …)
// are masked by kind whatever they look like.
type Handler struct {
	next slog.Handler
}

var _ slog.Handler = (*Handler)(nil)

// NewHandler returns a masking wrapper around next.
func NewHandler(next slog.Handler) *Handler { return &Handler{next: next} }

// Enabled reports whether next handles the level.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle masks r and passes it to next.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Text(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(Attr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

// WithAttrs masks attrs and returns a handler that adds them.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	m := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		m[i] = Attr(a)
	}
	return &Handler{next: h.next.WithAttrs(m)}
}

// WithGroup returns a handler that opens a group.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name)}
}

// Attr returns a with its value masked (see Handler); groups are masked
// recursively.
func Attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		g := v.Group()
		m := make([]slog.Attr, len(g))
		for i, ga := range g {
			m[i] = Attr(ga)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(m...)}
	}
	byKey, keyed := KeyMasker(a.Key)
	switch v.Kind() {
	case slog.KindString:
		if keyed {
			return slog.String(a.Key, byKey(v.String()))
		}
		return slog.String(a.Key, Text(v.String()))
	case slog.KindInt64, slog.KindUint64:
		s := v.String()
		if keyed {
			return slog.String(a.Key, byKey(s))
		}
		if t := Text(s); t != s {
			return slog.String(a.Key, t)
		}
		return slog.Attr{Key: a.Key, Value: v}
	case slog.KindAny:
		var s string
		switch x := v.Any().(type) {
		case error:
			s = x.Error()
		case fmt.Stringer:
			s = x.String()
		case []byte:
			s = string(x)
		default:
			s = fmt.Sprint(x)
		}
		if keyed {
			return slog.String(a.Key, byKey(s))
		}
		if t := Text(s); t != s {
			return slog.String(a.Key, t)
		}
		return slog.Attr{Key: a.Key, Value: v}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
