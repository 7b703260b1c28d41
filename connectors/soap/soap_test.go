package soap

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
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
