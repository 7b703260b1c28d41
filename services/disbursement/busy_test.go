package disbursement

import (
	"errors"
	"fmt"
	"testing"

	"github.com/shanghai-mca/mzhub/store"
)

// TestTransientStageErrors: Run runs a stage again only when every error
// it returned is contention at the state store (the returns stage joins
// one error per bank); any other error fails the batch as before.
func TestTransientStageErrors(t *testing.T) {
	busy := fmt.Errorf("bank boc: %w", errors.New("database is locked (5) (SQLITE_BUSY)"))
	gate := fmt.Errorf("bank ccb: store: begin: %w", store.ErrBusy)
	refused := fmt.Errorf("bank cmb: %w: trailer", ErrReturnRefused)
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{busy, true},
		{gate, true},
		{errors.Join(busy, gate), true},
		{errors.Join(busy, refused), false},
		{refused, false},
		{ErrAwaitingConfirmation, false},
		{errors.Join(), false},
	} {
		if got := transient(tc.err); got != tc.want {
			t.Errorf("transient(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
