package funeral

import (
	"bytes"
	"context"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/shanghai-mca/mzhub/security/audit/audittest"
	"github.com/shanghai-mca/mzhub/security/fieldcrypt"
	"github.com/shanghai-mca/mzhub/store"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// TestSealedBodiesFollowTheKeyRotation: after a field-key rotation, `mzhub
// keys reencrypt`'s targets move the funeral service's record bodies,
// remembered answers and partner secrets to the new key; with the old key
// dropped, every record, answer and secret still reads back (and a body
// from before sealing stays readable as it was).
func TestSealedBodiesFollowTheKeyRotation(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		k1 := bytes.Repeat([]byte{1}, 16)
		k2 := bytes.Repeat([]byte{2}, 16)
		blind := bytes.Repeat([]byte{9}, 32)
		mk := func(keys map[string][]byte) *fieldcrypt.Ring {
			r, err := fieldcrypt.NewRing(keys, blind)
			if err != nil {
				t.Fatal(err)
			}
			return r
		}
		old := mk(map[string][]byte{"k1": k1})
		st, err := OpenStore(ctx, db, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Apply(ctx, Write{PartnerID: "funeral.fh01", Kind: KindDeceased, ID: "D-0", Version: 1, Hash: "h0", Data: []byte(`{"name":"赵某某"}`)}); err != nil {
			t.Fatal(err)
		}
		st.SealWith(old)
		bodies := map[string]string{}
		for i, name := range []string{"李某某", "王某某", "张某某"} {
			id := "D-" + string(rune('1'+i))
			body := `{"version":1,"name":"` + name + `"}`
			bodies[id] = body
			if _, err := st.Apply(ctx, Write{PartnerID: "funeral.fh01", Kind: KindDeceased, ID: id, Version: 1, Hash: "h" + id,
				Data: []byte(body), IdemKey: "idem-" + id, ReqHash: "r" + id}); err != nil {
				t.Fatal(err)
			}
		}
		_ = st.Close(ctx)
		ps, err := OpenPartnerStore(ctx, db, old, &audittest.Recorder{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		issued, err := ps.Add(ctx, Partner{ID: "funeral.fh16", Name: "新殡仪馆", Role: RoleFuneralHome, Environments: []string{EnvSandbox}}, "cli:alice")
		if err != nil {
			t.Fatal(err)
		}

		// Rotate, and move what the funeral service sealed.
		both := mk(map[string][]byte{"k1": k1, "k2": k2})
		var moved int64
		for _, tg := range fieldcrypt.Registered() {
			if !strings.HasPrefix(tg.String(), "funeral_") {
				continue
			}
			m, err := tg.Move(ctx, fieldcrypt.Place{DB: db}, both)
			if err != nil || m.Failed != 0 {
				t.Fatalf("%s: %+v %v", tg, m, err)
			}
			moved += m.Values
			if inv, _ := tg.Inventory(ctx, fieldcrypt.Place{DB: db}, nil); inv["k1"] != 0 {
				t.Fatalf("%s: %d values left under k1", tg, inv["k1"])
			}
		}
		if moved != 3+3+1 { // three records, three answers, one secret
			t.Fatalf("moved %d values, want 7", moved)
		}

		// The old key is dropped: everything reads back under k2 alone.
		only2 := mk(map[string][]byte{"k2": k2})
		st2, err := OpenStore(ctx, db, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer st2.Close(ctx)
		st2.SealWith(only2)
		for id, body := range bodies {
			rec, ok, err := st2.Get(ctx, "funeral.fh01", KindDeceased, id)
			if err != nil || !ok || string(rec.Data) != body {
				t.Fatalf("%s after the old key was dropped: %s %v %v", id, rec.Data, ok, err)
			}
			res, err := st2.Apply(ctx, Write{PartnerID: "funeral.fh01", Kind: KindDeceased, ID: id, Version: 1, Hash: "h" + id,
				Data: []byte(body), IdemKey: "idem-" + id, ReqHash: "r" + id})
			if err != nil || res.Replayed == nil || !strings.Contains(string(res.Replayed.Body), body[len(`{"version":1,"name":"`):][:9]) {
				t.Fatalf("%s replayed answer: %+v %v", id, res.Replayed, err)
			}
		}
		if rec, ok, err := st2.Get(ctx, "funeral.fh01", KindDeceased, "D-0"); err != nil || !ok || !strings.Contains(string(rec.Data), "赵某某") {
			t.Fatalf("body from before sealing: %s %v %v", rec.Data, ok, err)
		}
		ps2, err := OpenPartnerStore(ctx, db, only2, &audittest.Recorder{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		state, err := ps2.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(state.Secrets[issued.KeyID]); got != issued.SecretHex {
			t.Fatalf("partner secret after the old key was dropped: %q", got)
		}
	})
}
