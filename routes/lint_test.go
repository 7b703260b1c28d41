package routes_test

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/routes"
)

func TestLintFile(t *testing.T) {
	const tmpl = `template: t1
params:
  - name: bank
  - name: rate
    default: "5"
route:
  id: q-${bank}
  from: {kind: bus, config: {topic: "in.${bank}"}}
  rate_limit: {per_second: ${rate}}
  to:
    - kind: bus
      config: {topic: out}
`
	cases := []struct {
		name  string
		files map[string]string
		lint  string
		want  []string // "line: substring"; empty means clean
	}{
		{
			name:  "clean",
			files: map[string]string{"a.yaml": "id: a\nfrom: {kind: bus, config: {topic: x}}\nto:\n  - kind: bus\n    config: {topic: y}\n"},
			lint:  "a.yaml",
		},
		{
			name:  "unknown key with its line",
			files: map[string]string{"a.yaml": "id: a\nfrom: {kind: bus, config: {topic: x}}\nretries: 3\nto:\n  - kind: bus\n    config: {topic: y}\n"},
			lint:  "a.yaml",
			want:  []string{"3: field retries not found"},
		},
		{
			name: "every problem at once",
			files: map[string]string{"a.yaml": `id: A B
from: {kind: nosuch}
key: body.(
steps:
  - filter: {expr: '1 +'}
  - switch:
      cases:
        - when: "true"
          to: [nowhere]
  - {}
errors: {jitter: 2}
to: []
`},
			lint: "a.yaml",
			want: []string{"1: id:", "2: from (nosuch): kind \"nosuch\": unknown connector", "3: key: expression", "5: steps[0].filter.expr", "9: unknown sink \"nowhere\"", "10: steps[2]: exactly one of", "11: errors.jitter", "12: to: at least one sink"},
		},
		{
			name:  "bad connector config",
			files: map[string]string{"a.yaml": "id: a\nfrom: {kind: bus, config: {topik: x}}\nto:\n  - kind: bus\n    config: {topic: y}\n"},
			lint:  "a.yaml",
			want:  []string{"2: from (bus): config:"},
		},
		{
			name: "unknown key of a step's config, with its own line",
			files: map[string]string{"a.yaml": `id: a
from: {kind: bus, config: {topic: x}}
steps:
  - name: f
    filter:
      expr: "true"
      exp: typo
to:
  - kind: bus
    config: {topic: y}
`},
			lint: "a.yaml",
			want: []string{"7: field exp not found in type routes.FilterStep"},
		},
		{
			name:  "unknown step kind",
			files: map[string]string{"a.yaml": "id: a\nfrom: {kind: bus, config: {topic: x}}\nsteps:\n  - filtre: {expr: \"true\"}\nto:\n  - kind: bus\n    config: {topic: y}\n"},
			lint:  "a.yaml",
			want:  []string{"4: unknown step \"filtre\" (known: map, validate, filter"},
		},
		{
			name:  "two step kinds in one step",
			files: map[string]string{"a.yaml": "id: a\nfrom: {kind: bus, config: {topic: x}}\nsteps:\n  - filter: {expr: \"true\"}\n    dedupe: {key: body.id}\nto:\n  - kind: bus\n    config: {topic: y}\n"},
			lint:  "a.yaml",
			want:  []string{"4: steps[0]: exactly one of map, validate"},
		},
		{
			name: "unknown key deep in a connector config, with its own line",
			files: map[string]string{"a.yaml": `id: a
from:
  kind: http
  config:
    methods: [POST]
    url: http://partner.example/in
to:
  - kind: bus
    config: {topic: y}
`},
			lint: "a.yaml",
			want: []string{"6: from (http): config: field url not found in type httpx.SourceConfig"},
		},
		{
			name: "unknown key of an enrich lookup's connector",
			files: map[string]string{"a.yaml": `id: a
from: {kind: bus, config: {topic: x}}
steps:
  - enrich:
      target: answer
      via:
        kind: http
        config:
          url: http://partner.example/ask
          retry: 3
to:
  - kind: bus
    config: {topic: y}
`},
			lint: "a.yaml",
			want: []string{"10: steps[0].enrich.via (http): config: field retry not found in type httpx.SinkConfig"},
		},
		{
			name:  "instances",
			files: map[string]string{"t1.template.yaml": tmpl, "i.yaml": "use: t1\ninstances:\n  - {bank: a}\n  - {bank: b, rate: \"9\"}\n"},
			lint:  "i.yaml",
		},
		{
			name:  "instance problems",
			files: map[string]string{"t1.template.yaml": tmpl, "i.yaml": "use: t1\ninstances:\n  - {rate: \"1\"}\n  - {bank: b, colour: red}\n  - {bank: c, rate: \"-1\"}\n"},
			lint:  "i.yaml",
			want:  []string{"3: instances[0]: param \"bank\" is required", "4: instances[1]: unknown param \"colour\"", "5: instances[2]: template t1 does not instantiate", "9: rate_limit.per_second"},
		},
		{
			name:  "template alone",
			files: map[string]string{"t1.template.yaml": strings.Replace(tmpl, "${rate}", "${speed}", 1)},
			lint:  "t1.template.yaml",
			want:  []string{"9: placeholder ${speed} is not a declared param"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, b := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, n), []byte(b), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			errs := routes.LintFile(filepath.Join(dir, tc.lint))
			var got []string
			for _, e := range errs {
				got = append(got, e.String())
			}
			all := strings.Join(got, "\n")
			if len(tc.want) == 0 && len(errs) > 0 {
				t.Fatalf("want clean, got:\n%s", all)
			}
			for _, w := range tc.want {
				line, sub, _ := strings.Cut(w, ": ")
				found := false
				for _, e := range errs {
					if strings.Contains(e.Message, sub) && (line == "" || strconv.Itoa(e.Line) == line) {
						found = true
					}
				}
				if !found {
					t.Errorf("missing %q in:\n%s", w, all)
				}
			}
		})
	}
}

func TestDuplicateIDs(t *testing.T) {
	dir := t.TempDir()
	r := "id: a\nfrom: {kind: bus, config: {topic: x}}\nto:\n  - kind: bus\n    config: {topic: y}\n"
	_ = os.WriteFile(filepath.Join(dir, "1.yaml"), []byte(r), 0o600)
	_ = os.WriteFile(filepath.Join(dir, "2.yaml"), []byte(r), 0o600)
	_, errs := routes.LoadDir(dir)
	if len(errs) != 1 || !strings.Contains(errs[0].Message, "also defined") {
		t.Fatalf("errs = %v", errs)
	}
}
