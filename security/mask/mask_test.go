package mask

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

func TestMaskers(t *testing.T) {
	tests := []struct {
		name string
		f    func(string) string
		in   string
		want string
	}{
		{"id 18 X", IDNumber, "31010119900307123X", "310***********123X"},
		{"id 18", IDNumber, "310101199003071234", "310***********1234"},
		{"id spaces", IDNumber, "310101 19900307 1234", "310***********1234"},
		{"id 15", IDNumber, "310101900307123", "310********7123"},
		{"id short", IDNumber, "12345", "*****"},
		{"id empty", IDNumber, "", ""},
		{"account", Account, "6222021234567890123", "***************0123"},
		{"account dashes", Account, "6222-0212-3456-7890", "************7890"},
		{"account short", Account, "123", "***"},
		{"phone", Phone, "13812345678", "138****5678"},
		{"phone +86", Phone, "+8613812345678", "+86138****5678"},
		{"phone landline", Phone, "021-63211234", "021****1234"},
		{"phone short", Phone, "12345", "***45"},
		{"name 3", Name, "张三丰", "张**"},
		{"name 2", Name, "李四", "李*"},
		{"name 1", Name, "王", "*"},
		{"name latin", Name, " Alice ", "A****"},
		{"name empty", Name, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f(tt.in); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestValidID(t *testing.T) {
	// 11010519491231002X is the GB 11643 standard's own example.
	for s, want := range map[string]bool{
		"11010519491231002X": true,
		"11010519491231002x": true,
		"110105194912310021": false,
		"1101051949123100":   false,
		"A1010519491231002X": false,
	} {
		if got := ValidID(s); got != want {
			t.Errorf("ValidID(%q) = %v", s, got)
		}
	}
}

func TestText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"id=11010519491231002X ok", "id=110***********002X ok"},
		{"身份证11010519491231002X，电话13812345678", "身份证110***********002X，电话138****5678"},
		{"card 6222021234567890123 paid 12345 fen", "card ***************0123 paid 12345 fen"},
		{"18 digits bad check 110105194912310021", "18 digits bad check **************0021"},
		{"tel +8613812345678", "tel +86138****5678"},
		{"old id 310101900307123", "old id 310********7123"},
		{"ts 1764270000000 date 20261127 amount 440000", "ts 1764270000000 date 20261127 amount 440000"},
		{"already 310***********1234 and 138****5678", "already 310***********1234 and 138****5678"},
		{"longer run 12345678901234567890123456789", "longer run 12345678901234567890123456789"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := Text(tt.in); got != tt.want {
			t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if fs := Scan(Text(tt.in)); len(fs) != 0 {
			t.Errorf("Scan(Text(%q)) = %v", tt.in, fs)
		}
	}
}

func TestScan(t *testing.T) {
	logs := "line one\nuser 11010519491231002X failed\nphone 13812345678\nok 310***********1234\n"
	fs, err := ScanReader(strings.NewReader(logs))
	if err != nil {
		t.Fatal(err)
	}
	if len(fs) != 2 || fs[0].Line != 2 || fs[0].Kind != KindID || !fs[0].ValidCheckDigit || fs[1].Line != 3 || fs[1].Kind != KindPhone {
		t.Fatalf("findings %v", fs)
	}
	if strings.Contains(fs[0].String(), "11010519491231002X") {
		t.Fatalf("finding shows the whole ID: %s", fs[0])
	}
	if ids := ScanIDs(logs); len(ids) != 1 || ids[0].Offset != 14 {
		t.Fatalf("ScanIDs %v", ids)
	}
}

type person struct{ ID string }

func (p person) String() string { return "person " + p.ID }

func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewHandler(slog.NewJSONHandler(&buf, nil)))
	log = log.With("account_no", "1234567890")
	log.WithGroup("g").Info("paid 11010519491231002X",
		"id_number", "abc",
		"phone", 13812345678,
		"person_name", "张三丰",
		"note", "acct 6222021234567890123",
		"err", errors.New("bad id 11010519491231002X"),
		"who", person{"11010519491231002X"},
		slog.Group("inner", "mobile", "13812345678"),
		"count", 42,
	)
	out := buf.String()
	for _, leak := range []string{"11010519491231002X", "13812345678", "张三丰", "6222021234567890123", "1234567890"} {
		if strings.Contains(out, leak) {
			t.Errorf("log leaks %q: %s", leak, out)
		}
	}
	for _, want := range []string{`"msg":"paid 110***********002X"`, `"account_no":"******7890"`, `"person_name":"张**"`, `"count":42`, `"mobile":"138****5678"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s: %s", want, out)
		}
	}
}

func FuzzText(f *testing.F) {
	f.Add("id 11010519491231002X tel 13812345678")
	f.Add("6222021234567890123")
	f.Fuzz(func(t *testing.T, s string) {
		m := Text(s)
		if fs := ScanIDs(m); len(fs) != 0 {
			t.Fatalf("Text(%q) = %q still holds an ID", s, m)
		}
	})
}
