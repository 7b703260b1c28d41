package verification_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/problem"
	"github.com/shanghai-mca/mzhub/security"
	"github.com/shanghai-mca/mzhub/security/access/accesstest"
	"github.com/shanghai-mca/mzhub/security/sign"
	"github.com/shanghai-mca/mzhub/services/verification"
)

func shippedCentre(t *testing.T) verification.Centre {
	t.Helper()
	c, err := verification.LoadCentre(filepath.Join("..", "..", "configs", "partners", verification.CentreFile))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestShippedCentre: the shipped file names the centre, its key ids and
// addresses, and no secret; its rule admits the centre's API only.
func TestShippedCentre(t *testing.T) {
	c := shippedCentre(t)
	pa := c.Access()
	if pa.ID != "verification-centre" || len(pa.KeyIDs) == 0 || pa.Disabled || len(pa.AllowCIDRs) == 0 {
		t.Fatalf("shipped centre rule: %+v", pa)
	}
	if len(pa.AllowPaths) != 1 || pa.AllowPaths[0] != "/internal/verification/" {
		t.Fatalf("allow paths: %v", pa.AllowPaths)
	}
	if err := (security.Config{KeyProvider: "env", PartnerAPI: func() security.PartnerAPIConfig {
		p := security.DefaultConfig().PartnerAPI
		p.Partners = []security.PartnerAccess{pa}
		return p
	}(), Console: security.DefaultConfig().Console, Audit: security.DefaultConfig().Audit}).Validate(); err != nil {
		t.Fatalf("the guard refuses the shipped rule: %v", err)
	}
}

// TestParseCentreRefuses: a bad file is refused with every reason, and a
// field the file does not know (a secret pasted in) is an error.
func TestParseCentreRefuses(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"secret pasted in": {"id: verification-centre\nname: x\nallow_ips: [10.0.0.1]\nkey_ids: [vc-1234]\nsecret: 00ff\n", "field secret not found"},
		"no key ids":       {"id: verification-centre\nname: x\nallow_ips: [10.0.0.1]\n", "key_ids: at least one"},
		"bad id":           {"id: centre\nname: x\nallow_ips: [10.0.0.1]\nkey_ids: [vc-1234]\n", `id "centre"`},
		"bad address":      {"id: verification-centre\nname: x\nallow_ips: [10.0.0.300]\nkey_ids: [vc-1234]\n", "neither an address"},
		"no addresses":     {"id: verification-centre\nname: x\nkey_ids: [vc-1234]\n", "allow_ips: at least one"},
		"key id twice":     {"id: verification-centre\nname: x\nallow_ips: [10.0.0.1]\nkey_ids: [vc-1234, vc-1234]\n", "listed twice"},
		"bad key id":       {"id: verification-centre\nname: x\nallow_ips: [10.0.0.1]\nkey_ids: [VC]\n", `"VC"`},
		"no name":          {"id: verification-centre\nallow_ips: [10.0.0.1]\nkey_ids: [vc-1234]\n", "name: required"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := verification.ParseCentre([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestCentreThroughTheGuard puts the real partner guard with the shipped
// centre's rule in front of a handler: a call signed with the centre's key
// passes as verification-centre; an unknown key, a wrong secret, the
// centre disabled, another path and an address outside its list are
// refused with problem+json.
func TestCentreThroughTheGuard(t *testing.T) {
	secret := bytes.Repeat([]byte{7}, 32)
	run := func(t *testing.T, c verification.Centre, path, keyID string, key []byte) (int, string, string) {
		t.Helper()
		g := accesstest.Guard(t, accesstest.Options{Partners: []security.PartnerAccess{c.Access()}, Secret: func(string) []byte { return secret }})
		var who string
		srv := httptest.NewServer(g.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, _ := security.PartnerFrom(r.Context())
			who = p.ID
			w.WriteHeader(http.StatusCreated)
		})))
		defer srv.Close()
		req, err := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(`{"reference":"R1"}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if err := sign.Sign(req, keyID, key); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p problem.Problem
		if resp.StatusCode >= 400 {
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("refusal %d with Content-Type %q", resp.StatusCode, ct)
			}
			if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, p.Code, who
	}
	const households = "/internal/verification/v1/households"
	local := shippedCentre(t)
	local.AllowIPs = []string{"127.0.0.1", "::1"}
	kid := local.KeyIDs[0]

	if code, _, who := run(t, local, households, kid, secret); code != http.StatusCreated || who != "verification-centre" {
		t.Fatalf("the centre's signed call: %d as %q", code, who)
	}
	if code, pc, who := run(t, local, households, "someone-else", secret); code != http.StatusUnauthorized || pc != problem.CodeUnknownKey || who != "" {
		t.Fatalf("unknown key: %d %s %q", code, pc, who)
	}
	if code, pc, who := run(t, local, households, kid, bytes.Repeat([]byte{8}, 32)); code != http.StatusUnauthorized || pc == "" || who != "" {
		t.Fatalf("wrong secret: %d %s %q", code, pc, who)
	}
	disabled := local
	disabled.Disabled = true
	if code, pc, who := run(t, disabled, households, kid, secret); code != http.StatusUnauthorized || pc != problem.CodeUnknownKey || who != "" {
		t.Fatalf("disabled centre: %d %s %q", code, pc, who)
	}
	if code, _, who := run(t, local, "/partner/v1/records", kid, secret); code != http.StatusForbidden || who != "" {
		t.Fatalf("another API: %d %q", code, who)
	}
	// The shipped addresses are the centre's network, not this host.
	if code, _, who := run(t, shippedCentre(t), households, kid, secret); code != http.StatusForbidden || who != "" {
		t.Fatalf("from an address outside allow_ips: %d %q", code, who)
	}
}

func FuzzParseCentre(f *testing.F) {
	f.Add([]byte("id: verification-centre\nname: 核对中心\nallow_ips: [10.31.200.0/28]\nkey_ids: [vcentre-1]\n"))
	f.Add([]byte("id: verification.x\nname: y\nallow_ips: ['::1']\nkey_ids: [abcd, efgh]\nrate: 2\nburst: 3\ndisabled: true\n"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := verification.ParseCentre(data)
		if err != nil {
			return
		}
		pa := c.Access()
		if len(pa.AllowCIDRs) != len(c.AllowIPs) || len(pa.KeyIDs) == 0 {
			t.Fatalf("accepted centre %+v gives rule %+v", c, pa)
		}
	})
}
