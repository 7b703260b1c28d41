package soap

import (
	"encoding/base64"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
)

// ErrBadToken is a request whose UsernameToken is missing or wrong.
var ErrBadToken = errors.New("soap: bad UsernameToken")

// Request is an inbound SOAP request as a simulated service sees it.
type Request struct {
	// Version of the envelope.
	Version string
	// Body is the content of the Body (the operation element).
	Body []byte
	// Operation is the local name of the Body's first element.
	Operation string
	// Username and Password (or digest), Nonce and Created of the token.
	Username, Password, Nonce, Created string
	// Digest says the password is a PasswordDigest.
	Digest bool
}

// CheckToken verifies the request's token against user and password.
func (r Request) CheckToken(user, password string) error {
	if r.Username != user {
		return ErrBadToken
	}
	if !r.Digest {
		if r.Password != password {
			return ErrBadToken
		}
		return nil
	}
	nonce, err := base64.StdEncoding.DecodeString(r.Nonce)
	if err != nil || PasswordDigest(nonce, r.Created, password) != r.Password {
		return ErrBadToken
	}
	return nil
}

// ReadRequest reads a SOAP request from r (at most 4 MiB), for simulators.
func ReadRequest(r *http.Request) (Request, error) {
	data, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
	if err != nil {
		return Request{}, err
	}
	var env struct {
		XMLName xml.Name
		Header  struct {
			Security struct {
				Token struct {
					Username string `xml:"Username"`
					Password struct {
						Type  string `xml:"Type,attr"`
						Value string `xml:",chardata"`
					} `xml:"Password"`
					Nonce   string `xml:"Nonce"`
					Created string `xml:"Created"`
				} `xml:"UsernameToken"`
			} `xml:"Security"`
		} `xml:"Header"`
	}
	if err := xml.Unmarshal(data, &env); err != nil {
		return Request{}, ErrNotSOAP
	}
	body, fault, err := Parse(data)
	if err != nil {
		return Request{}, err
	}
	if fault != nil {
		return Request{}, ErrNotSOAP
	}
	var op struct{ XMLName xml.Name }
	_ = xml.Unmarshal(body, &op)
	tok := env.Header.Security.Token
	v := V11
	if env.XMLName.Space == NS12 {
		v = V12
	}
	return Request{Version: v, Body: body, Operation: op.XMLName.Local, Username: tok.Username, Password: tok.Password.Value,
		Nonce: tok.Nonce, Created: tok.Created, Digest: tok.Password.Type == typeDigest}, nil
}

// WriteFault answers a fault (HTTP 500, as SOAP requires).
func WriteFault(w http.ResponseWriter, version string, f Fault) {
	w.Header().Set("Content-Type", ContentType(version, ""))
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write(FaultEnvelope(version, f))
}

// WriteBody answers body wrapped in an envelope.
func WriteBody(w http.ResponseWriter, version string, body []byte) {
	w.Header().Set("Content-Type", ContentType(version, ""))
	_, _ = w.Write(Envelope(version, nil, body))
}
