package funeral

import (
	"encoding/json"
	"testing"
	"time"
)

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "H-001", `a"b\c`, "<&>", "\x00\x1f", "礼厅", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("%q: invalid JSON %s: %v", s, got, err)
		}
		want, _ := json.Marshal(s)
		var wantBack string
		_ = json.Unmarshal(want, &wantBack)
		if back != wantBack {
			t.Fatalf("%q: round trip %q, want %q", s, back, wantBack)
		}
	})
}

func TestRecordJSON(t *testing.T) {
	r := Record{ID: "H-1", PartnerID: "funeral.fh01", Version: 3, Revision: 7, Deleted: true,
		StoredAt: time.Date(2026, 11, 27, 1, 30, 0, 0, time.UTC), Data: json.RawMessage(`{"a":1}`)}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"H-1","partner_id":"funeral.fh01","version":3,"revision":7,"stored_at":"2026-11-27T09:30:00+08:00","deleted":true,"data":{"a":1}}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
}
