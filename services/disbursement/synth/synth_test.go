package synth

import "testing"

func TestPersonsValidAndUnique(t *testing.T) {
	g := New(1)
	seen := map[string]bool{}
	for range 200_000 {
		p := g.Next()
		if !ValidID(p.ID) {
			t.Fatalf("invalid ID check digit: %s…", p.ID[:6])
		}
		if seen[p.ID] {
			t.Fatal("duplicate ID")
		}
		seen[p.ID] = true
		if p.Division < "310101" || p.Division > "310151" || len(p.Account) != 19 || luhnDigit([]byte(p.Account[:18])) != p.Account[18] {
			t.Fatalf("bad person %+v", p.Division)
		}
	}
}

func TestCheckDigit(t *testing.T) {
	// The GB 11643 worked example: 11010519491231002X.
	if !ValidID("11010519491231002X") || ValidID("110105194912310021") {
		t.Fatal("check digit")
	}
}
