package routes_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/routes"
)

// TestShippedRouteTests runs the route test files of configs/routes (none
// ship today: configs/routes holds no route).
func TestShippedRouteTests(t *testing.T) {
	files, err := routes.TestFiles("../configs/routes")
	if err != nil {
		t.Fatalf("test files: %v %v", files, err)
	}
	for _, f := range files {
		res, err := routes.RunTestFile(context.Background(), f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		for _, r := range res {
			if !r.Passed() {
				t.Errorf("%s: %s: %s", filepath.Base(f), r.Name, strings.Join(r.Failures, "; "))
			}
		}
	}
}

// TestRouteTestFailures: the runner reports wrong expectations.
func TestRouteTestFailures(t *testing.T) {
	dir := t.TempDir()
	route := "id: a\nfrom: {kind: bus, config: {topic: x}}\nsteps:\n  - filter: {expr: 'body.n > 1'}\nto:\n  - name: out\n    kind: bus\n    config: {topic: y}\n"
	test := `tests:
  - name: wrong count
    input: [{json: {n: 5}}]
    expect: {out: []}
  - name: wrong body
    input: [{json: {n: 5}}]
    expect: {out: [{json: {n: 6}}]}
  - name: wrong drop count
    input: [{json: {n: 0}}]
    expect: {dropped: 0}
  - name: right
    input: [{json: {n: 0}}, {json: {n: 2}}]
    expect: {out: [{expr: body.n == 2}], dropped: 1}
`
	_ = os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(route), 0o600)
	_ = os.WriteFile(filepath.Join(dir, "a_test.yaml"), []byte(test), 0o600)
	res, err := routes.RunTestFile(context.Background(), filepath.Join(dir, "a_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := []bool{false, false, false, true}
	for i, r := range res {
		if r.Passed() != want[i] {
			t.Errorf("%s: passed=%v failures=%v", r.Name, r.Passed(), r.Failures)
		}
	}
}

// TestRouteTestAggregateTimeout: a timeout-only aggregate completes at the
// end of a test case's input.
func TestRouteTestAggregateTimeout(t *testing.T) {
	dir := t.TempDir()
	route := "id: a\nfrom: {kind: bus, config: {topic: x}}\nsteps:\n  - aggregate: {key: body.b, timeout: 1h}\n  - map: {body: 'len(body)'}\nto:\n  - name: out\n    kind: bus\n    config: {topic: y}\n"
	test := "tests:\n  - name: groups\n    input: [{json: {b: 1, n: 1}}, {json: {b: 2, n: 2}}, {json: {b: 1, n: 3}}]\n    expect: {out: [{body: '2'}, {body: '1'}]}\n"
	_ = os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(route), 0o600)
	_ = os.WriteFile(filepath.Join(dir, "a_test.yaml"), []byte(test), 0o600)
	res, err := routes.RunTestFile(context.Background(), filepath.Join(dir, "a_test.yaml"))
	if err != nil || len(res) != 1 || !res[0].Passed() {
		t.Fatalf("%v %+v", err, res)
	}
}
