package audit

import "testing"

func TestUserActor(t *testing.T) {
	for _, tt := range []struct{ name, want string }{
		{"wang", "user:wang"},
		{"user:wang", "user:wang"},
		{"self-declared:chen", "self-declared:chen"},
		{"system:disbursement", "system:disbursement"},
		{"partner:funeral.fh01", "partner:funeral.fh01"},
	} {
		if got := UserActor(tt.name); got != tt.want {
			t.Errorf("UserActor(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}
