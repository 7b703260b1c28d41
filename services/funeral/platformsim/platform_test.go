package platformsim_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/routes/routetest"
	"github.com/shanghai-mca/mzhub/services/funeral"
	"github.com/shanghai-mca/mzhub/services/funeral/platformsim"
)

// TestPlatformKeepsTheLatestRevision publishes changes the way the funeral
// service does (through its declared publisher) and checks the simulated
// platform keeps the highest revision per record, whatever the repeats.
func TestPlatformKeepsTheLatestRevision(t *testing.T) {
	b := routetest.NewBus()
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := platformsim.New(b, nil)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()

	pub := funeral.Topology.Guard(b)
	change := func(id string, rev int64) bus.Message {
		body, _ := json.Marshal(funeral.Change{Op: "put", PartnerID: "funeral.fh01", Kind: "hall", ID: id, Revision: rev, Data: json.RawMessage(`{}`)})
		key := "funeral.fh01/hall/" + id
		return bus.Message{Key: key, IdempotencyKey: key + "/" + strconv.FormatInt(rev, 10), Body: body}
	}
	msgs := []bus.Message{change("H-1", 1), change("H-1", 2), change("H-2", 1), change("H-1", 2), change("H-1", 3),
		{Key: "x", IdempotencyKey: "x", Body: []byte("not json")}}
	if err := pub.Publish(ctx, funeral.TopicChanges, msgs...); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitReceived(ctx, len(msgs)); err != nil {
		t.Fatal(err)
	}
	if got, want := p.Stats(), (platformsim.Stats{Received: 6, Records: 2, Repeats: 1, Bad: 1}); got != want {
		t.Errorf("stats %v, want %v", got, want)
	}
	if r, ok := p.Revision("funeral.fh01", "hall", "H-1"); !ok || r != 3 {
		t.Errorf("H-1 at revision %d (%v), want 3", r, ok)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
