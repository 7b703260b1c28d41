package ministry_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/household"
	"github.com/shanghai-mca/mzhub/connectors/household/householdsim"
	"github.com/shanghai-mca/mzhub/connectors/ministry"
	"github.com/shanghai-mca/mzhub/connectors/ministry/ministrysim"
)

func persons(i int) []ministry.Person {
	var ps []ministry.Person
	for _, m := range householdsim.Household(i, false) {
		ps = append(ps, ministry.Person{ID: m.IDNumber, Name: m.Name})
	}
	return ps
}

// TestInboundSourceAcksOnlyWhatIsOnTheBus: the ministry-inbound source
// emits each request under its reference and acknowledges it only after
// the emit succeeded; a failed emit leaves the request on the platform, and
// it is pulled and emitted again under the same key.
func TestInboundSourceAcksOnlyWhatIsOnTheBus(t *testing.T) {
	sim, err := ministrysim.Start(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	c, err := ministry.New(sim.Config())
	if err != nil {
		t.Fatal(err)
	}
	deps := connectors.Deps{Partners: household.NewDirectory(c)}
	src, err := ministry.InboundSpec().Source.New(&ministry.InboundConfig{Limit: 50, Every: 100 * time.Millisecond}, deps)
	if err != nil {
		t.Fatal(err)
	}
	refs := sim.Inject("32", [][]ministry.Person{persons(10), persons(11)})
	var mu sync.Mutex
	emitted := map[string]int{}
	failed := false
	got := make(chan struct{}, 16)
	emit := func(_ context.Context, msgs ...connectors.Message) error {
		mu.Lock()
		defer mu.Unlock()
		for _, m := range msgs {
			if !failed {
				failed = true
				return errors.New("bus unavailable")
			}
			var in ministry.Inbound
			if err := json.Unmarshal(m.Body, &in); err != nil || m.Key != ministry.InboundKey(in.Ref) || m.Headers[ministry.HeaderProvince] != "32" || len(in.Persons) == 0 {
				t.Errorf("message %q %v: %v", m.Key, m.Headers, err)
			}
			emitted[in.Ref]++
		}
		got <- struct{}{}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, emit) }()
	bound := time.After(time.Minute)
	for {
		mu.Lock()
		n := len(emitted)
		mu.Unlock()
		if n == len(refs) {
			break
		}
		select {
		case <-got:
		case <-bound:
			t.Fatalf("emitted %v of %v", emitted, refs)
		}
	}
	// The acks follow the emits: poll the platform until both are gone.
	for {
		left, err := c.Pull(context.Background(), 50)
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			break
		}
		select {
		case <-bound:
			t.Fatalf("left on the platform after the emits: %v", left)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, ref := range refs {
		if emitted[ref] != 1 {
			t.Errorf("%s emitted %d times after the failed emit", ref, emitted[ref])
		}
	}
}

// TestReturnSink: the ministry-return sink returns an answer and answers
// with its reference; returning twice keeps the first; a body it cannot
// read is permanent.
func TestReturnSink(t *testing.T) {
	sim, err := ministrysim.Start(time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	c, err := ministry.New(sim.Config())
	if err != nil {
		t.Fatal(err)
	}
	sink, err := ministry.ReturnSpec().Sink.New(&ministry.ReturnConfig{}, connectors.Deps{Partners: household.NewDirectory(c)})
	if err != nil {
		t.Fatal(err)
	}
	ref := sim.Inject("44", [][]ministry.Person{persons(20)})[0]
	id := householdsim.Household(20, false)[0].IDNumber
	body, _ := json.Marshal(ministry.ReturnBody{Ref: ref, Complete: true, Facts: []household.Fact{{IDNumber: id, Kind: "wage", Category: "evidence", AmountFen: 600000}}})
	r, ok := sink.(interface {
		Reply(context.Context, bus.Message) (bus.Message, error)
	})
	if !ok {
		t.Fatalf("the return sink does not answer: %T", sink)
	}
	for range 2 {
		ans, err := r.Reply(context.Background(), bus.Message{Body: body})
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			Ref      string `json:"ref"`
			Returned bool   `json:"returned"`
		}
		if err := json.Unmarshal(ans.Body, &out); err != nil || out.Ref != ref || !out.Returned {
			t.Fatalf("answer %s: %v", ans.Body, err)
		}
	}
	if got := sim.Returned()[ref]; got.Status != "complete" || got.Persons != 1 || len(sim.Returned()) != 1 {
		t.Fatalf("returned %+v", sim.Returned())
	}
	if _, err := r.Reply(context.Background(), bus.Message{Body: []byte(`{"facts":[]}`)}); !errors.Is(err, connectors.ErrPermanent) {
		t.Fatalf("a return without ref: %v", err)
	}
	if _, err := ministry.ReturnSpec().Sink.New(&ministry.ReturnConfig{}, connectors.Deps{Partners: household.NewDirectory()}); err == nil {
		t.Fatal("a return sink without the ministry configured was built")
	}
}
