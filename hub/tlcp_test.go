package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"testing"

	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/hub/hubtest"
	"github.com/shanghai-mca/mzhub/security/accounts"
	"github.com/shanghai-mca/mzhub/security/tlcp"
	"github.com/shanghai-mca/mzhub/security/tlcp/tlcptest"
)

// TestConsoleOverTLCP: with security.console.tlcp set the hub serves the
// console on a second, TLCP listener; a security administrator whose
// role needs a second factor logs in there with the password and a
// mapped SM2 client certificate, while the plain listener still asks for
// TOTP; the TLCP listener serves nothing but the console.
func TestConsoleOverTLCP(t *testing.T) {
	p := tlcptest.New(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	srv := hubtest.Start(t, hubtest.Options{Configure: func(c *config.Config) {
		c.Security.Console.TLCP = p.Config(addr)
		c.Security.Console.SecondFactorRoles = []string{"security-admin"}
	}})
	ctx := context.Background()
	m := srv.Hub.Security().Accounts
	pw, err := m.CreateUser(ctx, accounts.Actor{Name: "system:test"}, "secadmin", "", accounts.RoleSecurityAdmin)
	if err != nil {
		t.Fatal(err)
	}
	key := p.Client(t, "secadmin-ukey")
	b, _ := os.ReadFile(p.File("secadmin-ukey.crt"))
	cert, err := tlcp.ReadCert(b, p.File("ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.AddCert(ctx, accounts.Actor{Name: "system:test"}, "secadmin", cert); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"username": "secadmin", "password": pw})
	post := func(c *http.Client, url string) int {
		t.Helper()
		resp, err := c.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(http.DefaultClient, srv.URL+"/console/auth/login"); code != http.StatusUnauthorized {
		t.Fatalf("plain login without TOTP: %d, want 401", code)
	}
	c := p.HTTPClient(t, key)
	if code := post(c, "https://"+addr+"/console/auth/login"); code != http.StatusOK {
		t.Fatalf("TLCP login with the mapped certificate: %d, want 200", code)
	}
	resp, err := c.Get("https://" + addr + "/partner/v1/halls")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("partner API over TLCP: %d, want 404", resp.StatusCode)
	}
}
