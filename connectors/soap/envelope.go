package soap

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // WS-Security PasswordDigest is defined with SHA-1
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Versions and their envelope namespaces and content types.
const (
	V11 = "1.1"
	V12 = "1.2"

	NS11 = "http://schemas.xmlsoap.org/soap/envelope/"
	NS12 = "http://www.w3.org/2003/05/soap-envelope"

	nsWSSE     = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
	nsWSU      = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
	typeText   = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
	typeDigest = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
)

// ContentType returns the HTTP content type of a version's requests; 1.2
// carries the action as a parameter.
func ContentType(version, action string) string {
	if version == V12 {
		ct := "application/soap+xml; charset=utf-8"
		if action != "" {
			ct += `; action="` + action + `"`
		}
		return ct
	}
	return "text/xml; charset=utf-8"
}

// Namespace returns the envelope namespace of a version.
func Namespace(version string) string {
	if version == V12 {
		return NS12
	}
	return NS11
}

// UsernameToken is a WS-Security UsernameToken.
type UsernameToken struct {
	// Username is the account at the partner.
	Username string
	// Password is its secret.
	Password string
	// Digest sends PasswordDigest (Base64(SHA-1(nonce + created + password)))
	// instead of the password in clear.
	Digest bool
}

// header returns the wsse:Security header block for now.
func (u UsernameToken) header(now time.Time) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`<wsse:Security xmlns:wsse="` + nsWSSE + `" xmlns:wsu="` + nsWSU + `"><wsse:UsernameToken><wsse:Username>`)
	if err := xml.EscapeText(&b, []byte(u.Username)); err != nil {
		return nil, err
	}
	b.WriteString(`</wsse:Username>`)
	if !u.Digest {
		b.WriteString(`<wsse:Password Type="` + typeText + `">`)
		if err := xml.EscapeText(&b, []byte(u.Password)); err != nil {
			return nil, err
		}
		b.WriteString(`</wsse:Password></wsse:UsernameToken></wsse:Security>`)
		return b.Bytes(), nil
	}
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("soap: nonce: %w", err)
	}
	created := now.UTC().Format("2006-01-02T15:04:05.000Z")
	b.WriteString(`<wsse:Password Type="` + typeDigest + `">` + PasswordDigest(nonce, created, u.Password) + `</wsse:Password>`)
	b.WriteString(`<wsse:Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">` +
		base64.StdEncoding.EncodeToString(nonce) + `</wsse:Nonce><wsu:Created>` + created + `</wsu:Created></wsse:UsernameToken></wsse:Security>`)
	return b.Bytes(), nil
}

// PasswordDigest is Base64(SHA-1(nonce + created + password)), the
// UsernameToken profile's digest.
func PasswordDigest(nonce []byte, created, password string) string {
	h := sha1.New() //nolint:gosec // defined by the UsernameToken profile
	h.Write(nonce)
	h.Write([]byte(created))
	h.Write([]byte(password))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// Envelope wraps body (XML of the operation) in a SOAP envelope of the
// version, with header blocks when given.
func Envelope(version string, header, body []byte) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<soap:Envelope xmlns:soap="` + Namespace(version) + `">`)
	if len(header) > 0 {
		b.WriteString(`<soap:Header>`)
		b.Write(header)
		b.WriteString(`</soap:Header>`)
	}
	b.WriteString(`<soap:Body>`)
	b.Write(body)
	b.WriteString(`</soap:Body></soap:Envelope>`)
	return b.Bytes()
}

// Fault is a SOAP fault (1.1 or 1.2) as an error.
type Fault struct {
	// Code is the fault code without prefix: Client, Server, Sender,
	// Receiver, VersionMismatch, MustUnderstand, DataEncodingUnknown.
	Code string
	// Subcode is the 1.2 subcode or the 1.1 code's dotted suffix.
	Subcode string
	// Reason is the fault string / reason text.
	Reason string
}

func (f *Fault) Error() string {
	s := "soap fault " + f.Code
	if f.Subcode != "" {
		s += "/" + f.Subcode
	}
	return s + ": " + f.Reason
}

// Retryable reports whether the partner may succeed when asked again:
// Server (1.1) and Receiver (1.2) faults are the partner's; the others
// say the request itself is wrong.
func (f *Fault) Retryable() bool { return f.Code == "Server" || f.Code == "Receiver" }

// ErrNotSOAP is a document that is not a SOAP envelope.
var ErrNotSOAP = errors.New("not a SOAP envelope")

// Parse reads a SOAP 1.1 or 1.2 envelope and returns the content of its
// Body (the operation's answer, as raw XML) or the fault it carries.
func Parse(data []byte) (body []byte, fault *Fault, err error) {
	var env struct {
		XMLName xml.Name
		Body    struct {
			Inner []byte `xml:",innerxml"`
		} `xml:"Body"`
	}
	if err := xml.Unmarshal(data, &env); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrNotSOAP, err)
	}
	if env.XMLName.Local != "Envelope" || (env.XMLName.Space != NS11 && env.XMLName.Space != NS12) {
		return nil, nil, fmt.Errorf("%w: root %s %s", ErrNotSOAP, env.XMLName.Space, env.XMLName.Local)
	}
	inner := bytes.TrimSpace(env.Body.Inner)
	var probe struct {
		XMLName xml.Name
		// 1.1
		FaultCode   string `xml:"faultcode"`
		FaultString string `xml:"faultstring"`
		// 1.2
		Code struct {
			Value   string `xml:"Value"`
			Subcode struct {
				Value string `xml:"Value"`
			} `xml:"Subcode"`
		} `xml:"Code"`
		Reason struct {
			Text string `xml:"Text"`
		} `xml:"Reason"`
	}
	if len(inner) == 0 {
		return nil, nil, fmt.Errorf("%w: empty body", ErrNotSOAP)
	}
	if err := xml.Unmarshal(inner, &probe); err != nil {
		return nil, nil, fmt.Errorf("%w: body: %w", ErrNotSOAP, err)
	}
	if probe.XMLName.Local != "Fault" {
		return inner, nil, nil
	}
	f := &Fault{}
	if env.XMLName.Space == NS12 {
		f.Code, f.Subcode, f.Reason = local(probe.Code.Value), local(probe.Code.Subcode.Value), strings.TrimSpace(probe.Reason.Text)
	} else {
		code := local(probe.FaultCode)
		f.Code, f.Subcode, _ = strings.Cut(code, ".")
		f.Reason = strings.TrimSpace(probe.FaultString)
	}
	if f.Code == "" {
		f.Code = "Server"
	}
	return nil, f, nil
}

func local(qname string) string {
	qname = strings.TrimSpace(qname)
	if i := strings.LastIndexByte(qname, ':'); i >= 0 {
		return qname[i+1:]
	}
	return qname
}

// FaultEnvelope builds a fault envelope (simulators, tests).
func FaultEnvelope(version string, f Fault) []byte {
	var b bytes.Buffer
	esc := func(s string) string { var x bytes.Buffer; _ = xml.EscapeText(&x, []byte(s)); return x.String() }
	if version == V12 {
		b.WriteString(`<soap:Fault><soap:Code><soap:Value>soap:` + esc(f.Code) + `</soap:Value>`)
		if f.Subcode != "" {
			b.WriteString(`<soap:Subcode><soap:Value>` + esc(f.Subcode) + `</soap:Value></soap:Subcode>`)
		}
		b.WriteString(`</soap:Code><soap:Reason><soap:Text xml:lang="zh">` + esc(f.Reason) + `</soap:Text></soap:Reason></soap:Fault>`)
	} else {
		code := f.Code
		if f.Subcode != "" {
			code += "." + f.Subcode
		}
		b.WriteString(`<soap:Fault><faultcode>soap:` + esc(code) + `</faultcode><faultstring>` + esc(f.Reason) + `</faultstring></soap:Fault>`)
	}
	return Envelope(version, nil, b.Bytes())
}
