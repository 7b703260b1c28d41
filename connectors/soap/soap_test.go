package soap

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/connectors"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		name      string
		doc       string
		body      string
		code      string
		retryable bool
		err       bool
	}{
		{"1.1 answer", string(Envelope(V11, nil, []byte(`<r:Ans xmlns:r="urn:x"><v>1</v></r:Ans>`))), `<r:Ans xmlns:r="urn:x"><v>1</v></r:Ans>`, "", false, false},
		{"1.2 answer", string(Envelope(V12, []byte(`<h/>`), []byte(`<Ans/>`))), `<Ans/>`, "", false, false},
		{"1.1 server fault", string(FaultEnvelope(V11, Fault{Code: "Server", Reason: "busy"})), "", "Server", true, false},
		{"1.1 client fault", string(FaultEnvelope(V11, Fault{Code: "Client", Subcode: "Auth", Reason: "bad token"})), "", "Client", false, false},
		{"1.2 receiver fault", string(FaultEnvelope(V12, Fault{Code: "Receiver", Reason: "down"})), "", "Receiver", true, false},
		{"1.2 sender fault", string(FaultEnvelope(V12, Fault{Code: "Sender", Subcode: "x:Bad", Reason: "bad"})), "", "Sender", false, false},
		{"not xml", "hello", "", "", false, true},
		{"other root", `<a xmlns="urn:x"><Body/></a>`, "", "", false, true},
		{"empty body", `<soap:Envelope xmlns:soap="` + NS11 + `"><soap:Body> </soap:Body></soap:Envelope>`, "", "", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			body, f, err := Parse([]byte(c.doc))
			if (err != nil) != c.err {
				t.Fatalf("err = %v", err)
			}
			if err != nil {
				if !errors.Is(err, ErrNotSOAP) {
					t.Fatalf("%v is not ErrNotSOAP", err)
				}
				return
			}
			if c.code != "" {
				if f == nil || f.Code != c.code || f.Retryable() != c.retryable {
					t.Fatalf("fault = %+v, want %s retryable %v", f, c.code, c.retryable)
				}
				return
			}
			if f != nil || string(body) != c.body {
				t.Fatalf("body %q fault %v", body, f)
			}
		})
	}
}

func TestPasswordDigest(t *testing.T) {
	// The UsernameToken profile 1.0's example (section 3.1).
	nonce := []byte{0x0f, 0x36, 0xe2, 0x28}
	got := PasswordDigest(nonce, "2003-07-16T01:24:32Z", "secret")
	if len(got) != 28 {
		t.Fatalf("digest %q is not Base64 of 20 bytes", got)
	}
	if PasswordDigest(nonce, "2003-07-16T01:24:32Z", "other") == got {
		t.Fatal("digest ignores the password")
	}
}

func TestClient(t *testing.T) {
	var lastAction, lastCT, lastBody string
	mode := "ok"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		lastAction, lastCT, lastBody = r.Header.Get("SOAPAction"), r.Header.Get("Content-Type"), string(b)
		switch mode {
		case "ok":
			_, _ = w.Write(Envelope(V11, nil, []byte(`<Ans>ok</Ans>`)))
		case "client":
			w.WriteHeader(500)
			_, _ = w.Write(FaultEnvelope(V11, Fault{Code: "Client", Reason: "bad request"}))
		case "server":
			w.WriteHeader(500)
			_, _ = w.Write(FaultEnvelope(V11, Fault{Code: "Server", Reason: "busy"}))
		case "html":
			_, _ = w.Write([]byte("<html>proxy error</html>"))
		}
	}))
	defer srv.Close()
	cfg := DefaultConfig()
	cfg.URL, cfg.Action, cfg.Username, cfg.PasswordDigest = srv.URL, "urn:query", "mca", true
	cfg.Template = `<Q><k>{{.Key}}</k>{{.Body}}</Q>`
	cfg.Timeout = 5 * time.Second
	c, err := New(*cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.WithToken(UsernameToken{Username: "mca", Password: "pw", Digest: true})
	if err := c.Send(context.Background(), bus.Message{IdempotencyKey: "k1", Body: []byte(`<x/>`)}); err != nil {
		t.Fatal(err)
	}
	if lastAction != `"urn:query"` || !strings.HasPrefix(lastCT, "text/xml") || !strings.Contains(lastBody, "<Q><k>k1</k><x/></Q>") ||
		!strings.Contains(lastBody, "#PasswordDigest") || strings.Contains(lastBody, ">pw<") {
		t.Fatalf("request: action %q type %q body %s", lastAction, lastCT, lastBody)
	}
	for _, c2 := range []struct {
		mode      string
		permanent bool
		fault     bool
	}{{"client", true, true}, {"server", false, true}, {"html", true, false}} {
		mode = c2.mode
		_, err := c.Call(context.Background(), "", []byte(`<x/>`))
		var f *Fault
		if err == nil || errors.Is(err, connectors.ErrPermanent) != c2.permanent || errors.As(err, &f) != c2.fault {
			t.Errorf("%s: err = %v", c2.mode, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	c.Version, c.Template, c.PasswordEnv = "2.0", "{{", "X"
	err := c.Validate()
	for _, want := range []string{"url", "version", "template", "need username"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want %q", err, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Envelope(V11, nil, []byte(`<a>1</a>`)))
	f.Add(FaultEnvelope(V12, Fault{Code: "Sender", Subcode: "s", Reason: "r"}))
	f.Add(FaultEnvelope(V11, Fault{Code: "Server", Reason: "r"}))
	f.Add([]byte(`<soap:Envelope xmlns:soap="` + NS11 + `"><soap:Body><Fault/></soap:Body></soap:Envelope>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		body, fault, err := Parse(data)
		if err != nil && (body != nil || fault != nil) {
			t.Fatal("error with a result")
		}
		if err == nil && (body == nil) == (fault == nil) {
			t.Fatalf("body %q and fault %v", body, fault)
		}
		if fault != nil && fault.Code == "" {
			t.Fatal("fault without code")
		}
	})
}

// statusPartner is a WebService that keeps every Pay it receives by key,
// may hold a Pay past the client's deadline (the partner has it, the
// client gave up), and answers Status: the key's receipt, the fault
// UnknownKey when it never received it, a Server fault while down.
type statusPartner struct {
	mu     sync.Mutex
	counts map[string]int
	hold   func(key string, n int) bool
	down   bool
}

func (p *statusPartner) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, err := ReadRequest(r)
	if err != nil {
		WriteFault(w, V12, Fault{Code: "Sender", Reason: err.Error()})
		return
	}
	var q struct {
		Key string `xml:"Key"`
	}
	_ = xml.Unmarshal(req.Body, &q)
	p.mu.Lock()
	switch req.Operation {
	case "Pay":
		p.counts[q.Key]++
		hold := p.hold != nil && p.hold(q.Key, p.counts[q.Key])
		p.mu.Unlock()
		if hold {
			<-r.Context().Done()
			return
		}
		WriteBody(w, V12, []byte(`<PayResult><Key>`+q.Key+`</Key></PayResult>`))
	case "Status":
		n, down := p.counts[q.Key], p.down
		p.mu.Unlock()
		switch {
		case down:
			WriteFault(w, V12, Fault{Code: "Receiver", Reason: "maintenance"})
		case n == 0:
			WriteFault(w, V12, Fault{Code: "Sender", Subcode: "UnknownKey", Reason: "no such payment"})
		default:
			WriteBody(w, V12, []byte(`<StatusResult><Key>`+q.Key+`</Key></StatusResult>`))
		}
	default:
		p.mu.Unlock()
		WriteFault(w, V12, Fault{Code: "Sender", Reason: "unknown operation"})
	}
}

func statusConfig(url string) *Config {
	cfg := DefaultConfig()
	cfg.URL, cfg.Version, cfg.Action = url, V12, "urn:pay#Pay"
	cfg.Template = `<Pay><Key>{{.Key}}</Key>{{.Body}}</Pay>`
	cfg.StatusAction, cfg.StatusTemplate, cfg.NotFoundFaults = "urn:pay#Status", `<Status><Key>{{.Key}}</Key></Status>`, []string{"UnknownKey"}
	cfg.Timeout = 5 * time.Second
	return cfg
}

// TestDelivered: the status operation tells received (an answer), not
// received (the not-found fault) and unknown (any other fault: still in
// doubt); without status_action the sink cannot be asked.
func TestDelivered(t *testing.T) {
	p := &statusPartner{counts: map[string]int{}}
	srv := httptest.NewServer(p)
	defer srv.Close()
	c, err := New(*statusConfig(srv.URL))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Send(ctx, bus.Message{IdempotencyKey: "k1", Body: []byte(`<Amount>100</Amount>`)}); err != nil {
		t.Fatal(err)
	}
	if ok, err := c.Delivered(ctx, bus.Message{IdempotencyKey: "k1"}); !ok || err != nil {
		t.Errorf("k1 delivered: %v %v, want true", ok, err)
	}
	if ok, err := c.Delivered(ctx, bus.Message{IdempotencyKey: "k2"}); ok || err != nil {
		t.Errorf("k2 delivered: %v %v, want false without error", ok, err)
	}
	p.mu.Lock()
	p.down = true
	p.mu.Unlock()
	if ok, err := c.Delivered(ctx, bus.Message{IdempotencyKey: "k1"}); ok || err == nil {
		t.Errorf("status down: %v %v, want an error", ok, err)
	}
	if !c.CanCheckDelivery() {
		t.Error("CanCheckDelivery false with status_action")
	}
	plain := statusConfig(srv.URL)
	plain.StatusAction, plain.StatusTemplate, plain.NotFoundFaults = "", "", nil
	c2, err := New(*plain)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Delivered(ctx, bus.Message{IdempotencyKey: "k1"}); !errors.Is(err, ErrNoStatusAction) || c2.CanCheckDelivery() {
		t.Errorf("without status_action: %v, can check %v", err, c2.CanCheckDelivery())
	}
	bad := statusConfig(srv.URL)
	bad.NotFoundFaults = nil
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "not_found_faults") {
		t.Errorf("status_action without not_found_faults: %v", err)
	}
}
