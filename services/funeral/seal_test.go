package funeral

import (
	"context"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/store/storetest"
)

// TestRecordsSealedAtRest: with a sealer, the stored body of a deceased
// person (name, contact) and the remembered answer of an idempotent push
// hold no plaintext name; reads open them; bodies stored before sealing
// stay readable.
func TestRecordsSealedAtRest(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t)
	st, err := OpenStore(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close(ctx)
	// One record from before sealing was turned on.
	if _, err := st.Apply(ctx, Write{PartnerID: "funeral.fh01", Kind: KindDeceased, ID: "D-0", Version: 1, Hash: "h0", Data: []byte(`{"name":"赵某某"}`)}); err != nil {
		t.Fatal(err)
	}
	st.SealWith(testRing(t))
	body := []byte(`{"version":1,"name":"李某某","contact":{"name":"李四","relation":"女"}}`)
	if _, err := st.Apply(ctx, Write{PartnerID: "funeral.fh01", Kind: KindDeceased, ID: "D-1", Version: 1, Hash: "h1", Data: body, IdemKey: "idem-0001", ReqHash: "r1"}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`SELECT data FROM funeral_records WHERE record_id = 'D-1'`, `SELECT body FROM funeral_idempotency WHERE idem_key = 'idem-0001'`} {
		var raw string
		if err := db.QueryRowContext(ctx, q).Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(raw, "李某某") || strings.Contains(raw, "李四") {
			t.Fatalf("%s holds the name in plaintext: %s", q, raw)
		}
	}
	rec, ok, err := st.Get(ctx, "funeral.fh01", KindDeceased, "D-1")
	if err != nil || !ok || string(rec.Data) != string(body) {
		t.Fatalf("read back: %s %v %v", rec.Data, ok, err)
	}
	old, ok, err := st.Get(ctx, "funeral.fh01", KindDeceased, "D-0")
	if err != nil || !ok || !strings.Contains(string(old.Data), "赵某某") {
		t.Fatalf("record from before sealing: %s %v %v", old.Data, ok, err)
	}
	// The idempotent replay answers with the opened body.
	res, err := st.Apply(ctx, Write{PartnerID: "funeral.fh01", Kind: KindDeceased, ID: "D-1", Version: 1, Hash: "h1", Data: body, IdemKey: "idem-0001", ReqHash: "r1"})
	if err != nil || res.Replayed == nil || !strings.Contains(string(res.Replayed.Body), "李某某") {
		t.Fatalf("replay: %+v %v", res.Replayed, err)
	}
}
