package funeral

import "testing"

// TestCommittedRegistry loads configs/partners/funeral strictly: 15 funeral
// homes, 45 cemeteries and 9 columbaria, every entry valid.
func TestCommittedRegistry(t *testing.T) {
	reg, err := LoadRegistry("../../configs/partners/funeral")
	if err != nil {
		t.Fatal(err)
	}
	count := map[Role]int{}
	for _, p := range reg.Partners() {
		count[p.Role]++
		if len(p.AllowIPs) == 0 {
			t.Errorf("%s: empty allowlist", p.ID)
		}
		if p.Role == RoleFuneralHome && (p.BookingURL == "" || p.BookingKeyID == "") {
			t.Errorf("%s: no booking endpoint", p.ID)
		}
	}
	if count[RoleFuneralHome] != 15 || count[RoleCemetery] != 45 || count[RoleColumbarium] != 9 {
		t.Fatalf("registry counts %v", count)
	}
}
