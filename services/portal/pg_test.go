package portal

import (
	"os"
	"testing"
)

// TestIntegrationPortalPostgres runs the service's flows on a real
// PostgreSQL (MZHUB_TEST_POSTGRES; deploy/postgres/start.sh starts one):
// the migrations, the cursor-committed fetches, the ordered outbox with its
// in-doubt re-checks, 免申即享 confirmation and payouts, and the operator's
// actions on refused rows, each on a fresh schema.
func TestIntegrationPortalPostgres(t *testing.T) {
	if os.Getenv("MZHUB_TEST_POSTGRES") == "" {
		t.Skip("MZHUB_TEST_POSTGRES not set: skipping the portal on PostgreSQL (deploy/postgres/start.sh starts a server)")
	}
	for _, tc := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"applications", TestApplicationsTakenOnceByTheirCursor},
		{"status files", TestStatusFilesInOrderBadLinesRefused},
		{"mianshen", TestMianshenConfirmationAndPayout},
		{"certificates", TestAssistanceCertificateAnsweredFromTheRegister},
		{"certificate before the register", TestCertificateWaitsForTheRegister},
		{"in doubt", TestInDoubtSendsAreRecheckedNotResent},
		{"review", TestReviewWhenAutoApprovalIsOff},
		{"console", TestConsoleHandler},
		{"refused rows", TestRefusedRowRetriedOrSkippedByAnOperator},
	} {
		t.Run(tc.name, func(t *testing.T) {
			onPostgres.Store(t, true)
			defer onPostgres.Delete(t)
			tc.f(t)
		})
	}
}
