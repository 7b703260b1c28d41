package conformance

import (
	"bytes"
	"context"
	"encoding/xml"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/funeralhome/funeralhomesim"
)

func runAgainst(t *testing.T, f funeralhomesim.Faults, timeout time.Duration) Report {
	t.Helper()
	ctx := context.Background()
	home, err := funeralhomesim.Start(ctx, funeralhomesim.Config{Index: 3, Booking: funeralhomesim.Credentials{KeyID: "hub-fh03", Secret: []byte("booking-secret-fh03")}, Faults: f})
	if err != nil {
		t.Fatal(err)
	}
	defer home.Close(ctx)
	rep, err := RunFuneralHome(ctx, FuneralHomeOptions{Target: home.URL(), KeyID: "hub-fh03", Secret: []byte("booking-secret-fh03"), Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestReferenceSimulatorPasses(t *testing.T) {
	rep := runAgainst(t, funeralhomesim.Faults{}, 5*time.Second)
	var text bytes.Buffer
	_ = rep.WriteText(&text)
	if !rep.Passed() {
		t.Fatalf("the reference simulator fails:\n%s", text.String())
	}
	if len(rep.Results) < 25 {
		t.Fatalf("only %d checks ran", len(rep.Results))
	}
	ops := map[string]bool{}
	for _, r := range rep.Results {
		ops[r.Operation] = true
	}
	for _, op := range []string{"getAvailability", "createReservation", "getReservation", "cancelReservation"} {
		if !ops[op] {
			t.Errorf("operation %s not checked", op)
		}
	}
	if !strings.Contains(text.String(), "verdict: PASSED") {
		t.Errorf("text report: %s", text.String())
	}
	var x bytes.Buffer
	if err := rep.WriteJUnit(&x); err != nil {
		t.Fatal(err)
	}
	var parsed junitSuites
	if err := xml.Unmarshal(x.Bytes(), &parsed); err != nil || parsed.Suites[0].Tests != len(rep.Results) || parsed.Suites[0].Failures != 0 {
		t.Fatalf("junit: %v %+v", err, parsed)
	}
}

// TestBrokenSimulatorFails runs the kit against deliberately broken
// simulators and checks that the right findings are reported.
func TestBrokenSimulatorFails(t *testing.T) {
	cases := []struct {
		name     string
		faults   funeralhomesim.Faults
		timeout  time.Duration
		mustFail []string
	}{
		{"no idempotency", funeralhomesim.Faults{NoIdempotency: true}, 0, []string{"reserve/idempotent-replay", "reserve/key-reused-other-body"}},
		{"plain-text errors", funeralhomesim.Faults{PlainErrors: true}, 0, []string{"availability/unknown-type", "reserve/double-booking-refused", "get/unknown", "signature/unsigned-refused"}},
		{"no validation", funeralhomesim.Faults{AcceptBadInput: true}, 0, []string{"reserve/bad-input/end-before-start", "reserve/bad-input/bad-phone", "reserve/bad-input/time-without-offset", "availability/unknown-type"}},
		{"no signature check", funeralhomesim.Faults{SkipSignature: true}, 0, []string{"signature/unsigned-refused", "signature/wrong-secret-refused", "reserve/unsigned-refused"}},
		{"double booking", funeralhomesim.Faults{DoubleBook: true}, 0, []string{"reserve/double-booking-refused"}},
		{"too slow", funeralhomesim.Faults{Delay: 400 * time.Millisecond}, 150 * time.Millisecond, []string{"availability/hall"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			timeout := c.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			rep := runAgainst(t, c.faults, timeout)
			if rep.Passed() {
				t.Fatal("a broken implementation passed")
			}
			failed := map[string]string{}
			for _, r := range rep.Failed() {
				failed[r.Name] = r.Message
			}
			for _, name := range c.mustFail {
				if _, ok := failed[name]; !ok {
					t.Errorf("%s should fail; failures: %v", name, failed)
				}
			}
			if c.name == "too slow" && !strings.Contains(failed["availability/hall"], "no answer within") {
				t.Errorf("timeout finding: %q", failed["availability/hall"])
			}
			for _, r := range rep.Failed() {
				if r.Message == "" || r.Fix == "" {
					t.Errorf("%s: failure without a cause or a fix: %+v", r.Name, r)
				}
			}
			var x bytes.Buffer
			_ = rep.WriteJUnit(&x)
			if !strings.Contains(x.String(), "<failure") {
				t.Error("junit report has no failure")
			}
		})
	}
}

// TestFuneralHomeFixes: the fix printed for a failure names what to
// change: a home that verifies with another secret is told to verify the
// signature over the path as requested; a target where nothing answers, to
// start its API; a slow one, the deadline.
func TestFuneralHomeFixes(t *testing.T) {
	ctx := context.Background()
	home, err := funeralhomesim.Start(ctx, funeralhomesim.Config{Index: 3, Booking: funeralhomesim.Credentials{KeyID: "hub-fh03", Secret: []byte("booking-secret-fh03")}})
	if err != nil {
		t.Fatal(err)
	}
	defer home.Close(ctx)
	fixOf := func(rep Report, name string) string {
		for _, r := range rep.Results {
			if r.Name == name && !r.Passed {
				return r.Fix
			}
		}
		t.Fatalf("%s did not fail", name)
		return ""
	}
	rep, err := RunFuneralHome(ctx, FuneralHomeOptions{Target: home.URL(), KeyID: "hub-fh03", Secret: []byte("another-secret"), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if f := fixOf(rep, "availability/hall"); !strings.Contains(f, "signature over the path as requested") || !strings.Contains(f, "hub-fh03") {
		t.Errorf("wrong secret: fix %q", f)
	}
	var text strings.Builder
	_ = rep.WriteText(&text)
	if !strings.Contains(text.String(), "cause: a correctly signed call was refused: 401") || !strings.Contains(text.String(), "fix:   verify the signature") {
		t.Errorf("text report:\n%s", text.String())
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	rep, err = RunFuneralHome(ctx, FuneralHomeOptions{Target: dead, KeyID: "hub-fh03", Secret: []byte("booking-secret-fh03"), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if f := fixOf(rep, "availability/hall"); !strings.Contains(f, "start the booking API at "+dead) {
		t.Errorf("nothing answers: fix %q", f)
	}
}
