package hub_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"github.com/shanghai-mca/mzhub/hub/hubtest"
	"github.com/shanghai-mca/mzhub/security/accounts"
	"github.com/shanghai-mca/mzhub/security/audit"
)

// TestConsoleActionsAuditedWithTheirOutcome: an auditor trying a replay is
// refused and the refusal is audited as denied; an operator's replay that
// fails (no such dead letter) is audited as failed, never as success.
func TestConsoleActionsAuditedWithTheirOutcome(t *testing.T) {
	srv := hubtest.Start(t, hubtest.Options{})
	ctx := context.Background()
	form := func(c *hubtest.Client, path string, v url.Values) int {
		t.Helper()
		_, sess := c.Do(http.MethodGet, "/console/auth/session", nil)
		tok, _ := sess["csrf_token"].(string)
		v.Set("csrf_token", tok)
		code, _, _ := c.Form(path, v)
		return code
	}
	aud := srv.Console(t, "aud1", accounts.RoleAuditor)
	if code := form(aud, "/console/failures/replay", url.Values{"exchange": {"ex-404"}, "confirm": {"yes"}}); code != http.StatusForbidden {
		t.Fatalf("auditor's replay: %d, want 403", code)
	}
	op := srv.Console(t, "op1", accounts.RoleOperator)
	if code := form(op, "/console/failures/replay", url.Values{"exchange": {"ex-404"}, "confirm": {"yes"}}); code != http.StatusSeeOther {
		t.Fatalf("operator's replay of no dead letter: %d, want 303", code)
	}
	check := func(actor, outcome string, want int) {
		t.Helper()
		es, err := srv.Hub.Security().Audit.List(ctx, audit.Filter{Actor: actor, Action: "monitor.dead_letter.replay"})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, e := range es {
			if e.Outcome == outcome {
				n++
			}
		}
		if n != want {
			t.Errorf("%s: %d %s records of the replay, want %d (all: %+v)", actor, n, outcome, want, es)
		}
	}
	check("user:aud1", audit.OutcomeDenied, 1)
	check("user:op1", audit.OutcomeFailure, 1)
	check("user:op1", audit.OutcomeSuccess, 0)
}
