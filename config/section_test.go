package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/config/internal/testsection"
)

// widgetRegistry is a registry of the tests' own with the widget section.
func widgetRegistry() *Registry {
	r := NewRegistry()
	r.Register(Section{Key: testsection.Key, Doc: "Widget configures the test widgets.", Default: func() any { return testsection.Default() }})
	return r
}

func widgetOf(t *testing.T, c Config) testsection.Config {
	t.Helper()
	w, ok := SectionOf[testsection.Config](c, testsection.Key)
	if !ok {
		t.Fatal("config holds no widget section")
	}
	return w
}

func TestSectionDecode(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want func(testsection.Config) bool
		errs []string // substrings the error must hold; none: no error
		not  []string // substrings it must not hold
	}{
		{name: "absent section keeps the defaults", yaml: "profile: embedded\n",
			want: func(w testsection.Config) bool { return w == testsection.Default() }},
		{name: "keys set, others defaulted", yaml: "widget:\n  limit: 9\n  inner:\n    name: x\n",
			want: func(w testsection.Config) bool {
				return w.Limit == 9 && w.Inner.Name == "x" && w.Every == time.Minute && w.Dir == "data/widgets"
			}},
		{name: "empty section keeps the defaults", yaml: "widget:\n",
			want: func(w testsection.Config) bool { return w == testsection.Default() }},
		{name: "unknown key in the section", yaml: "profile: embedded\nwidget:\n  limt: 9\n",
			errs: []string{"line 3", "limt", "not found", "testsection.Config"}},
		{name: "unknown key at the top", yaml: "profile: embedded\ngadget: 1\n",
			errs: []string{"line 2", "gadget", "not found in type config.Config"}, not: []string{"struct {"}},
		{name: "wrong type in the section", yaml: "widget:\n  every: soon\n",
			errs: []string{"line 2", "soon"}},
	}
	reg := widgetRegistry()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := reg.Decode("test.yml", strings.NewReader(tt.yaml))
			if len(tt.errs) > 0 {
				if err == nil {
					t.Fatal("decoded, want an error")
				}
				for _, w := range tt.errs {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				for _, w := range tt.not {
					if strings.Contains(err.Error(), w) {
						t.Errorf("error %q mentions %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if w := widgetOf(t, cfg); !tt.want(w) {
				t.Fatalf("widget = %+v", w)
			}
			if cfg.Profile != "embedded" || cfg.HTTP.Listen != "127.0.0.1:8470" {
				t.Fatalf("core keys lost: %+v", cfg)
			}
		})
	}
	// A registry without the section does not know the key.
	if _, err := NewRegistry().Decode("test.yml", strings.NewReader("widget:\n  limit: 9\n")); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("unregistered section: %v, want an unknown-key error on line 1", err)
	}
}

func TestSectionEnvOverrides(t *testing.T) {
	reg := widgetRegistry()
	base := reg.Default()
	cfg := base
	env := map[string]string{"MZHUB_WIDGET_LIMIT": "7", "MZHUB_WIDGET_INNER_NAME": "y", "MZHUB_WIDGET_EVERY": "5s", "MZHUB_LOG_LEVEL": "debug"}
	if err := ApplyEnv(&cfg, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if w := widgetOf(t, cfg); w.Limit != 7 || w.Inner.Name != "y" || w.Every != 5*time.Second || cfg.Log.Level != "debug" {
		t.Fatalf("overrides not applied: %+v %+v", w, cfg.Log)
	}
	if widgetOf(t, base) != testsection.Default() {
		t.Fatal("overriding a copy changed the original")
	}
	err := ApplyEnv(&cfg, func(k string) string {
		return map[string]string{"MZHUB_WIDGET_EVERY": "forever", "MZHUB_WIDGET_LIMIT": "many"}[k]
	})
	if err == nil || !strings.Contains(err.Error(), "MZHUB_WIDGET_EVERY") || !strings.Contains(err.Error(), "MZHUB_WIDGET_LIMIT") {
		t.Fatalf("bad overrides: %v, want both variables named", err)
	}
}

func TestSectionValidate(t *testing.T) {
	reg := widgetRegistry()
	cfg, err := reg.Decode("test.yml", strings.NewReader("profile: galaxy\nwidget:\n  limit: 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	err = cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), `profile: "galaxy"`) || !strings.Contains(err.Error(), "widget.limit: 0") {
		t.Fatalf("Validate = %v, want the core and the section's problem at once", err)
	}
	if err := reg.Default().Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}

func TestSectionResolve(t *testing.T) {
	cfg := widgetRegistry().Default()
	before := cfg
	base := t.TempDir()
	cfg.Resolve(base)
	if got, want := widgetOf(t, cfg).Dir, filepath.Join(base, "data/widgets"); got != want {
		t.Fatalf("dir = %q, want %q", got, want)
	}
	if widgetOf(t, before).Dir != "data/widgets" {
		t.Fatal("resolving a copy changed the original")
	}
}

func TestSectionSetAndGet(t *testing.T) {
	cfg := widgetRegistry().Default()
	copied := cfg
	w := widgetOf(t, cfg)
	w.Limit = 42
	if err := SetSection(&cfg, testsection.Key, w); err != nil {
		t.Fatal(err)
	}
	if widgetOf(t, cfg).Limit != 42 || widgetOf(t, copied).Limit != 4 {
		t.Fatalf("set: %d, copy: %d; want 42 and 4", widgetOf(t, cfg).Limit, widgetOf(t, copied).Limit)
	}
	if err := SetSection(&cfg, "gadget", w); !errors.Is(err, ErrUnknownSection) {
		t.Fatalf("unknown key: %v", err)
	}
	if err := SetSection(&cfg, testsection.Key, 3); err == nil {
		t.Fatal("set a section to another type")
	}
	if _, ok := SectionOf[int](cfg, testsection.Key); ok {
		t.Fatal("SectionOf with the wrong type succeeded")
	}
	if _, ok := SectionOf[testsection.Config](Config{}, testsection.Key); ok {
		t.Fatal("SectionOf on a zero Config succeeded")
	}
}

func TestSectionReferenceAndSchema(t *testing.T) {
	reg := widgetRegistry()
	ref, err := reg.Reference("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"### `widget`\n\nWidget configures the test widgets.",
		"| `widget.limit` | integer | `4` | `MZHUB_WIDGET_LIMIT` | Limit is how many widgets turn at once. |",
		"| `widget.every` | duration | `1m0s` |",
		"#### `widget.inner`",
		"`MZHUB_WIDGET_INNER_NAME`",
		"| `store.dsn` |", // the core keys are still there
	} {
		if !strings.Contains(ref, want) {
			t.Errorf("reference lacks %q", want)
		}
	}
	raw, err := reg.Schema("..")
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		AdditionalProperties bool `json:"additionalProperties"`
		Properties           map[string]struct {
			Description          string                     `json:"description"`
			AdditionalProperties bool                       `json:"additionalProperties"`
			Properties           map[string]json.RawMessage `json:"properties"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	w, ok := s.Properties["widget"]
	if !ok || s.AdditionalProperties || w.AdditionalProperties || w.Description != "Widget configures the test widgets." ||
		len(w.Properties) != 4 || s.Properties["store"].Properties == nil {
		t.Fatalf("schema: widget %+v (present %v), top additionalProperties %v", w, ok, s.AdditionalProperties)
	}
}

func TestRegisterRejects(t *testing.T) {
	good := func() Section {
		return Section{Key: "gadget", Doc: "Gadget.", Default: func() any { return testsection.Default() }}
	}
	tests := []struct {
		name string
		edit func(*Section)
		want string
	}{
		{"duplicate key", func(s *Section) { s.Key = testsection.Key }, "registered twice"},
		{"a key of Config", func(s *Section) { s.Key = "store" }, "taken by Config.Store"},
		{"not snake_case", func(s *Section) { s.Key = "Gadget" }, "snake_case"},
		{"no doc", func(s *Section) { s.Doc = "" }, "doc: required"},
		{"no default", func(s *Section) { s.Default = nil }, "default: required"},
		{"pointer default", func(s *Section) { s.Default = func() any { c := testsection.Default(); return &c } }, "want a struct value"},
		{"no Validate", func(s *Section) { s.Default = func() any { return testsection.NoValidate{} } }, "no value-receiver Validate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := widgetRegistry()
			s := good()
			tt.edit(&s)
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(r.(string), tt.want) {
					t.Fatalf("panic %v, want one mentioning %q", r, tt.want)
				}
			}()
			reg.Register(s)
		})
	}
	reg := widgetRegistry()
	reg.Register(good())
	if got := reg.Sections(); len(got) != 2 || got[0].Key != "gadget" || got[1].Key != testsection.Key {
		t.Fatalf("sections %v, want gadget and widget in order", got)
	}
}

// FuzzDecode: the decoder, with a registered section, never panics; what it
// accepts validates without panicking and survives the environment walk.
func FuzzDecode(f *testing.F) {
	for _, name := range []string{"minimal.yml", "unknown_key.bad.yml", "wrong_type.bad.yml", "invalid_values.bad.yml", "two_docs.bad.yml"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("widget:\n  limit: 3\n  inner: {name: z}\nfuneral: 1\n"))
	f.Add([]byte("widget: null\nstore: {driver: sqlite}\n"))
	reg := widgetRegistry()
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := reg.Decode("fuzz.yml", bytes.NewReader(data))
		if err != nil {
			return
		}
		_ = cfg.Validate()
		if err := ApplyEnv(&cfg, func(string) string { return "" }); err != nil {
			t.Fatalf("empty environment: %v", err)
		}
		if _, ok := SectionOf[testsection.Config](cfg, testsection.Key); !ok {
			t.Fatal("decoded config lost its section")
		}
	})
}
