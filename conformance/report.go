package conformance

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
)

// Result is the outcome of one check.
type Result struct {
	// Name identifies the check, e.g. "reserve/idempotent-replay".
	Name string
	// Operation is the operationId checked ("" for cross-cutting checks).
	Operation string
	// Passed is true when the check held.
	Passed bool
	// Message says what was expected and what was seen (masked): the
	// cause of a failure, on one line.
	Message string
	// Fix says what to change for a failed check to pass, on one line.
	Fix string
	// Duration of the check.
	Duration time.Duration
}

// Report is a conformance run, filed by the bureau as evidence.
type Report struct {
	// Suite is the role checked ("funeral-home" or "pusher").
	Suite string
	// Target is the URL or partner checked.
	Target string
	// Started is when the run began.
	Started time.Time
	// Results in run order.
	Results []Result
}

// Passed reports whether every check passed (and there was at least one).
func (r Report) Passed() bool {
	if len(r.Results) == 0 {
		return false
	}
	for _, x := range r.Results {
		if !x.Passed {
			return false
		}
	}
	return true
}

// Failed returns the failed checks.
func (r Report) Failed() []Result {
	var out []Result
	for _, x := range r.Results {
		if !x.Passed {
			out = append(out, x)
		}
	}
	return out
}

// WriteText prints a human-readable report.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "mzhub conformance: %s\ntarget: %s\nstarted: %s\n\n", r.Suite, r.Target, r.Started.Format(time.RFC3339))
	for _, x := range r.Results {
		mark := "PASS"
		if !x.Passed {
			mark = "FAIL"
		}
		fmt.Fprintf(&b, "%s  %-45s %6dms", mark, x.Name, x.Duration.Milliseconds())
		if !x.Passed {
			fmt.Fprintf(&b, "\n      cause: %s", oneLine(orDefault(x.Message, "the check failed without saying why")))
			if x.Fix != "" {
				fmt.Fprintf(&b, "\n      fix:   %s", oneLine(x.Fix))
			}
		}
		b.WriteByte('\n')
	}
	if len(r.Results) == 0 {
		b.WriteString("no check ran, so nothing was shown: a run without checks never passes\n")
	}
	failed := len(r.Failed())
	verdict := "PASSED"
	if !r.Passed() {
		verdict = "FAILED"
	}
	fmt.Fprintf(&b, "\n%d passed, %d failed\nverdict: %s\n", len(r.Results)-failed, failed, verdict)
	_, err := io.WriteString(w, b.String())
	return err
}

type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr"`
	Props     []junitProp `xml:"properties>property"`
	Cases     []junitCase `xml:"testcase"`
}

type junitProp struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes the report as JUnit XML.
func (r Report) WriteJUnit(w io.Writer) error {
	s := junitSuite{Name: "mzhub-conformance-" + r.Suite, Tests: len(r.Results), Failures: len(r.Failed()), Timestamp: r.Started.UTC().Format(time.RFC3339),
		Props: []junitProp{{"target", r.Target}, {"role", r.Suite}}}
	var total time.Duration
	for _, x := range r.Results {
		total += x.Duration
		c := junitCase{Name: x.Name, Classname: r.Suite + "." + orDefault(x.Operation, "general"), Time: fmt.Sprintf("%.3f", x.Duration.Seconds())}
		if !x.Passed {
			text := oneLine(x.Message)
			if x.Fix != "" {
				text += "\nfix: " + oneLine(x.Fix)
			}
			c.Failure = &junitFailure{Message: oneLine(x.Message), Text: text}
		}
		s.Cases = append(s.Cases, c)
	}
	s.Time = fmt.Sprintf("%.3f", total.Seconds())
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(junitSuites{Suites: []junitSuite{s}}); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// oneLine folds a message onto one line (answers quoted in causes may
// carry newlines).
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
