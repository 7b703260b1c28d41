package routes_test

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/connectors"
	_ "github.com/shanghai-mca/mzhub/connectors/all"
	"github.com/shanghai-mca/mzhub/routes"
)

var update = flag.Bool("update", false, "rewrite the generated part of docs/routes.md")

// Markers around the generated part of docs/routes.md; the prose around
// them is written by hand.
const (
	beginGenerated = "<!-- BEGIN GENERATED -->\n"
	endGenerated   = "<!-- END GENERATED -->\n"
)

func TestReferenceGolden(t *testing.T) {
	got, err := routes.Reference("..", connectors.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	const doc = "../docs/routes.md"
	data, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	before, rest, ok := bytes.Cut(data, []byte(beginGenerated))
	if !ok {
		t.Fatalf("%s: no %q marker", doc, strings.TrimSpace(beginGenerated))
	}
	current, after, ok := bytes.Cut(rest, []byte(endGenerated))
	if !ok {
		t.Fatalf("%s: no %q marker", doc, strings.TrimSpace(endGenerated))
	}
	if *update {
		var out bytes.Buffer
		out.Write(before)
		out.WriteString(beginGenerated + got + endGenerated)
		out.Write(after)
		if err := os.WriteFile(doc, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if string(current) != got {
		t.Fatalf("the generated part of %s is stale: run go test ./routes -run TestReferenceGolden -update", doc)
	}
	for _, want := range []string{"#### `http`", "#### `sftp`", "#### `bus`", "#### `schedule`", "#### `enrich`",
		"| `enrich.cache_ttl` | duration | `5m0s` |", "| `errors.max_attempts` | integer | `8` |", "| `validate.rules[].expr` | string |"} {
		if !strings.Contains(got, want) {
			t.Errorf("reference lacks %q", want)
		}
	}
}
