package structdoc

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// inner is inlined into outer.
type inner struct {
	// Host is where to connect.
	Host string `yaml:"host"`
}

// outer is a sample config.
type outer struct {
	inner `yaml:",inline"`
	// Every is an interval.
	Every time.Duration `yaml:"every"`
	// Sub is a section.
	Sub struct {
		// N counts.
		N int `yaml:"n"`
	} `yaml:"sub"`
	// Skipped is not a key.
	Skipped string `yaml:"-"`
	hidden  string
	// Rate is a pointer.
	Rate *float64 `yaml:"rate"`
}

func TestFieldsAndDocs(t *testing.T) {
	v := outer{Every: time.Minute}
	v.Host = "h"
	docs, err := Collect("../..", reflect.TypeOf(v))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range Fields(reflect.ValueOf(v), "top") {
		got = append(got, strings.Join([]string{f.Path, TypeName(f.Type), DefaultValue(f.Value), docs.Of(f), boolString(f.IsSection())}, "|"))
	}
	want := []string{
		"top.host|string|`h`|Host is where to connect.|",
		"top.every|duration|`1m0s`|Every is an interval.|",
		"top.sub|struct|—|Sub is a section.|section",
		"top.rate|number|—|Rate is a pointer.|",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if d := docs.TypeDoc(reflect.TypeOf(v)); d != "outer is a sample config." {
		t.Errorf("type doc %q", d)
	}
}

func boolString(b bool) string {
	if b {
		return "section"
	}
	return ""
}
