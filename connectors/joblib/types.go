package joblib

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shanghai-mca/mzhub/security/mask"
)

// Channels an application arrives through.
const (
	// ChannelWeb is the portal's website (一网通办 PC).
	ChannelWeb = "web"
	// ChannelApp is the 随申办 mobile app.
	ChannelApp = "app"
	// ChannelTerminal is a self-service terminal (自助终端机) at a community
	// affairs centre; the application carries the terminal's id.
	ChannelTerminal = "terminal"
	// ChannelWindow is a counter of a community affairs acceptance centre (窗口).
	ChannelWindow = "window"
)

// Channels lists the known channels.
var Channels = []string{ChannelWeb, ChannelApp, ChannelTerminal, ChannelWindow}

// Status nodes of an application, in order (node_seq 1..4).
const (
	NodePreReview  = "prereview"  // 预审
	NodeAccepted   = "accepted"   // 受理
	NodeProcessing = "processing" // 办理
	NodeDone       = "done"       // 办结
)

// Nodes lists the nodes in their order; a node's seq is its index + 1.
var Nodes = []string{NodePreReview, NodeAccepted, NodeProcessing, NodeDone}

// NodeSeq returns the seq of a node (1..4), 0 for an unknown node.
func NodeSeq(node string) int {
	for i, n := range Nodes {
		if n == node {
			return i + 1
		}
	}
	return 0
}

// Results a node may carry. pass/reject close 预审, accepted/not_accepted
// 受理, approved/refused 办结; 办理 carries none. reject, not_accepted and
// any 办结 end the application: the portal takes no node after them.
const (
	ResultPass        = "pass"
	ResultReject      = "reject"
	ResultAccepted    = "accepted"
	ResultNotAccepted = "not_accepted"
	ResultApproved    = "approved"
	ResultRefused     = "refused"
)

var nodeResults = map[string][]string{
	NodePreReview:  {ResultPass, ResultReject},
	NodeAccepted:   {ResultAccepted, ResultNotAccepted},
	NodeProcessing: {""},
	NodeDone:       {ResultApproved, ResultRefused},
}

// Final reports whether a node with result ends the application.
func Final(node, result string) bool {
	return node == NodeDone || result == ResultReject || result == ResultNotAccepted
}

// Applicant is the person who applied.
type Applicant struct {
	// IDNumber is the resident ID number (GB 11643).
	IDNumber string `json:"id_number"`
	// Name is the applicant's name.
	Name string `json:"name"`
	// Phone is a contact number (optional).
	Phone string `json:"phone,omitempty"`
}

// Application is one application (办件) fetched from the job library.
type Application struct {
	// ApplicationID is the job library's number of the application (办件编号).
	ApplicationID string `json:"application_id"`
	// ItemCode is the bureau's item (事项编码).
	ItemCode string `json:"item_code"`
	// ItemName is the item's name as the portal shows it.
	ItemName string `json:"item_name"`
	// Channel is web, app, terminal or window.
	Channel string `json:"channel"`
	// TerminalID names the self-service terminal (channel terminal only).
	TerminalID string `json:"terminal_id,omitempty"`
	// Applicant is the person applying.
	Applicant Applicant `json:"applicant"`
	// Division is the district's division code (3101xx).
	Division string `json:"division"`
	// SubmittedAt is when the person submitted.
	SubmittedAt time.Time `json:"submitted_at"`
	// Form holds the item's form fields (text).
	Form map[string]string `json:"form,omitempty"`
}

var (
	appIDRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{5,39}$`)
	codeRE     = regexp.MustCompile(`^[A-Z][A-Z0-9-]{1,31}$`)
	divisionRE = regexp.MustCompile(`^3101[0-9]{2}$`)
	monthRE    = regexp.MustCompile(`^20[0-9]{2}-(0[1-9]|1[0-2])$`)
	refRE      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9-]{0,63}$`)
)

// ValidMonth reports whether s is a month YYYY-MM of this century.
func ValidMonth(s string) bool { return monthRE.MatchString(s) }

// ValidRef reports whether s can be an id of a case, payout, push batch or
// certificate (1-64 characters of A-Z a-z 0-9 and -).
func ValidRef(s string) bool { return refRE.MatchString(s) }

func validName(s string) bool {
	return s != "" && utf8.ValidString(s) && utf8.RuneCountInString(s) <= 32 && !strings.ContainsAny(s, "\r\n\t")
}

// Validate reports the first rule the application breaks (wrapping
// ErrInvalid); the reason never holds a whole ID number.
func (a *Application) Validate() error {
	switch {
	case !appIDRE.MatchString(a.ApplicationID):
		return fmt.Errorf("%w: application_id %q: want 6-40 characters of A-Z a-z 0-9 and -", ErrInvalid, clip(a.ApplicationID))
	case !codeRE.MatchString(a.ItemCode):
		return fmt.Errorf("%w: item_code %q is not an item code", ErrInvalid, clip(a.ItemCode))
	case !knownChannel(a.Channel):
		return fmt.Errorf("%w: channel %q: want one of %s", ErrInvalid, clip(a.Channel), strings.Join(Channels, ", "))
	case a.Channel == ChannelTerminal && !refRE.MatchString(a.TerminalID):
		return fmt.Errorf("%w: channel terminal needs a terminal_id", ErrInvalid)
	case !mask.ValidID(a.Applicant.IDNumber):
		return fmt.Errorf("%w: applicant.id_number %s is not a valid resident ID number", ErrInvalid, mask.IDNumber(a.Applicant.IDNumber))
	case !validName(a.Applicant.Name):
		return fmt.Errorf("%w: applicant.name: want 1-32 characters", ErrInvalid)
	case !divisionRE.MatchString(a.Division):
		return fmt.Errorf("%w: division %q is not a Shanghai district code", ErrInvalid, clip(a.Division))
	case a.SubmittedAt.IsZero():
		return fmt.Errorf("%w: submitted_at is missing", ErrInvalid)
	}
	return nil
}

func knownChannel(c string) bool {
	for _, k := range Channels {
		if c == k {
			return true
		}
	}
	return false
}

func clip(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return mask.Text(strings.ToValidUTF8(s, "?"))
}

// Refused is an item of a page the parser refused: its place in the page,
// its id when it had one, and why.
type Refused struct {
	// Index is the item's place in the page (0-based).
	Index int
	// ID is the item's application or case id when it could be read.
	ID string
	// Reason says what is wrong (masked).
	Reason string
}

// ApplicationPage is one page of new applications.
type ApplicationPage struct {
	// Applications are the valid applications of the page, in order.
	Applications []Application
	// Refused are the items that failed the rules.
	Refused []Refused
	// Next is the cursor to ask from next.
	Next string
	// More says whether more applications wait after Next.
	More bool
}

type rawPage struct {
	Items json.RawMessage `json:"applications"`
	Cases json.RawMessage `json:"cases"`
	Next  *string         `json:"next"`
	More  bool            `json:"more"`
}

// maxCursor bounds a cursor's length.
const maxCursor = 128

func decodePage(body []byte, field string) ([]json.RawMessage, string, bool, error) {
	var p rawPage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&p); err != nil {
		return nil, "", false, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if p.Next == nil {
		return nil, "", false, fmt.Errorf("%w: next is missing", ErrMalformed)
	}
	if len(*p.Next) > maxCursor || !utf8.ValidString(*p.Next) {
		return nil, "", false, fmt.Errorf("%w: next is not a cursor", ErrMalformed)
	}
	raw := p.Items
	if field == "cases" {
		raw = p.Cases
	}
	if len(raw) == 0 {
		return nil, "", false, fmt.Errorf("%w: %s is missing", ErrMalformed, field)
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, "", false, fmt.Errorf("%w: %s: %v", ErrMalformed, field, err)
	}
	return items, *p.Next, p.More, nil
}

// ParseApplicationPage decodes a page of GET /joblib/v1/applications. A
// page that is not the documented JSON is an error wrapping ErrMalformed;
// an item that does not decode or breaks the rules is listed in Refused
// with its reason and the others are kept.
func ParseApplicationPage(body []byte) (ApplicationPage, error) {
	items, next, more, err := decodePage(body, "applications")
	if err != nil {
		return ApplicationPage{}, err
	}
	p := ApplicationPage{Next: next, More: more}
	for i, raw := range items {
		var a Application
		if err := strictUnmarshal(raw, &a); err != nil {
			p.Refused = append(p.Refused, Refused{Index: i, ID: idOf(raw, "application_id"), Reason: fmt.Sprintf("%v: %s", ErrMalformed, mask.Text(err.Error()))})
			continue
		}
		if err := a.Validate(); err != nil {
			p.Refused = append(p.Refused, Refused{Index: i, ID: idOf(raw, "application_id"), Reason: err.Error()})
			continue
		}
		p.Applications = append(p.Applications, a)
	}
	return p, nil
}

func strictUnmarshal(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// idOf reads a string field of a raw item for a refusal, if it is a sane id.
func idOf(raw json.RawMessage, field string) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return ""
	}
	var s string
	if json.Unmarshal(m[field], &s) != nil || !refRE.MatchString(s) {
		return ""
	}
	return s
}

// Node is one status node of an application pushed to the job library.
type Node struct {
	// ApplicationID is the application.
	ApplicationID string `json:"application_id"`
	// Seq is the node's place: 1 预审, 2 受理, 3 办理, 4 办结.
	Seq int `json:"node_seq"`
	// Node is prereview, accepted, processing or done.
	Node string `json:"node"`
	// Result closes the node (see the Result constants; none for processing).
	Result string `json:"result,omitempty"`
	// Reason explains a reject, not_accepted or refused result (or an approval's basis).
	Reason string `json:"reason,omitempty"`
	// CertificateRef is the reference of a certificate issued with 办结 (救助证明).
	CertificateRef string `json:"certificate_ref,omitempty"`
	// Dept is the handling department's code.
	Dept string `json:"dept"`
	// At is when the bureau reached the node.
	At time.Time `json:"at"`
}

// Key is the node's id in per-item results: "<application_id>#<seq>".
func (n Node) Key() string { return fmt.Sprintf("%s#%d", n.ApplicationID, n.Seq) }

// Validate reports the first rule the node breaks (wrapping ErrInvalid).
func (n *Node) Validate() error {
	switch {
	case !appIDRE.MatchString(n.ApplicationID):
		return fmt.Errorf("%w: application_id %q", ErrInvalid, clip(n.ApplicationID))
	case NodeSeq(n.Node) == 0:
		return fmt.Errorf("%w: node %q: want one of %s", ErrInvalid, clip(n.Node), strings.Join(Nodes, ", "))
	case n.Seq != NodeSeq(n.Node):
		return fmt.Errorf("%w: node %s has seq %d, want %d", ErrInvalid, n.Node, n.Seq, NodeSeq(n.Node))
	case !validResult(n.Node, n.Result):
		return fmt.Errorf("%w: node %s cannot carry result %q", ErrInvalid, n.Node, clip(n.Result))
	case (n.Result == ResultReject || n.Result == ResultNotAccepted || n.Result == ResultRefused) && strings.TrimSpace(n.Reason) == "":
		return fmt.Errorf("%w: node %s result %s needs a reason", ErrInvalid, n.Node, n.Result)
	case utf8.RuneCountInString(n.Reason) > 200 || !utf8.ValidString(n.Reason):
		return fmt.Errorf("%w: reason: at most 200 characters", ErrInvalid)
	case n.CertificateRef != "" && (n.Node != NodeDone || n.Result != ResultApproved || !refRE.MatchString(n.CertificateRef)):
		return fmt.Errorf("%w: certificate_ref only on an approved 办结, 1-64 characters of A-Z a-z 0-9 and -", ErrInvalid)
	case n.Dept == "":
		return fmt.Errorf("%w: dept is missing", ErrInvalid)
	case n.At.IsZero():
		return fmt.Errorf("%w: at is missing", ErrInvalid)
	}
	return nil
}

func validResult(node, result string) bool {
	for _, r := range nodeResults[node] {
		if r == result {
			return true
		}
	}
	return false
}

// Outcomes of one item of a pushing call.
const (
	// OutcomeOK: the portal took the item.
	OutcomeOK = "ok"
	// OutcomeDuplicate: the portal had the very same item already (delivered).
	OutcomeDuplicate = "duplicate"
	// OutcomeOutOfOrder: the previous node of the application is missing; send again after it.
	OutcomeOutOfOrder = "out_of_order"
	// OutcomeConflict: the portal holds a different item under the same key.
	OutcomeConflict = "conflict"
	// OutcomeInvalid: the item breaks the interface's rules.
	OutcomeInvalid = "invalid"
	// OutcomeUnknown: the application or case is unknown to the portal.
	OutcomeUnknown = "unknown"
	// OutcomeClosed: the application or case is closed and takes nothing more.
	OutcomeClosed = "closed"
)

// Delivered reports whether an outcome means the portal has the item.
func Delivered(outcome string) bool { return outcome == OutcomeOK || outcome == OutcomeDuplicate }

// Result is the portal's answer about one item of a pushing call.
type Result struct {
	// ID is the item's key (Node.Key, a case id, a payout id).
	ID string `json:"id"`
	// Outcome is one of the Outcome constants.
	Outcome string `json:"outcome"`
	// Reason explains an outcome other than ok.
	Reason string `json:"reason,omitempty"`
}

var outcomes = map[string]bool{OutcomeOK: true, OutcomeDuplicate: true, OutcomeOutOfOrder: true, OutcomeConflict: true,
	OutcomeInvalid: true, OutcomeUnknown: true, OutcomeClosed: true}

// ParseResults decodes the answer of a pushing call ({"results": [...]})
// and checks that it answers exactly the ids sent, once each: an answer that
// misses an item, names one not sent or carries an unknown outcome is
// malformed (and the whole call in doubt).
func ParseResults(body []byte, sent []string) (map[string]Result, error) {
	var r struct {
		Results []Result `json:"results"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	want := make(map[string]bool, len(sent))
	for _, id := range sent {
		want[id] = true
	}
	out := make(map[string]Result, len(r.Results))
	for _, x := range r.Results {
		switch {
		case !want[x.ID]:
			return nil, fmt.Errorf("%w: result for %q, which was not sent", ErrMalformed, clip(x.ID))
		case !outcomes[x.Outcome]:
			return nil, fmt.Errorf("%w: result for %s: unknown outcome %q", ErrMalformed, x.ID, clip(x.Outcome))
		}
		if _, dup := out[x.ID]; dup {
			return nil, fmt.Errorf("%w: two results for %s", ErrMalformed, x.ID)
		}
		x.Reason = clip200(x.Reason)
		out[x.ID] = x
	}
	if len(out) != len(want) {
		return nil, fmt.Errorf("%w: %d results for %d items sent", ErrMalformed, len(out), len(want))
	}
	return out, nil
}

func clip200(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200])
	}
	return mask.Text(s)
}

// NodeStatus is what the job library holds of one application: the last
// node it took (0: none) and whether it is closed.
type NodeStatus struct {
	// ApplicationID is the application.
	ApplicationID string `json:"application_id"`
	// LastSeq is the seq of the last node taken, 0 when none.
	LastSeq int `json:"last_seq"`
	// Known is false when the job library does not know the application.
	Known bool `json:"known"`
}

// ParseNodeStatus decodes the answer of POST /joblib/v1/nodes/query and
// checks it answers each application asked about.
func ParseNodeStatus(body []byte, asked []string) (map[string]NodeStatus, error) {
	var r struct {
		Applications []NodeStatus `json:"applications"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	want := make(map[string]bool, len(asked))
	for _, id := range asked {
		want[id] = true
	}
	out := make(map[string]NodeStatus, len(asked))
	for _, s := range r.Applications {
		if !want[s.ApplicationID] {
			return nil, fmt.Errorf("%w: status of %q, which was not asked about", ErrMalformed, clip(s.ApplicationID))
		}
		if s.LastSeq < 0 || s.LastSeq > len(Nodes) {
			return nil, fmt.Errorf("%w: %s: last_seq %d out of 0..%d", ErrMalformed, s.ApplicationID, s.LastSeq, len(Nodes))
		}
		out[s.ApplicationID] = s
	}
	if len(out) != len(want) {
		return nil, fmt.Errorf("%w: status of %d applications for %d asked", ErrMalformed, len(out), len(want))
	}
	return out, nil
}
