package routetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/connectors"
)

// SinkConfig configures a recording sink.
type SinkConfig struct {
	// Name picks the Recorder shared by every sink of that name.
	Name string `yaml:"name"`
}

// Recorder collects what sinks of one name received and can fail on demand.
type Recorder struct {
	mu sync.Mutex
	// Got are the messages delivered, in order.
	got []bus.Message
	// failNext makes the next n sends fail with failErr.
	failNext int
	failErr  error
	// Delay slows every send (a slow partner).
	Delay time.Duration
	// Answer is returned by Request (enrich lookups); nil echoes the request.
	Answer func(bus.Message) []byte
	// Requests counts Request calls.
	Requests int
}

// Got returns a copy of the delivered messages.
func (r *Recorder) Got() []bus.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]bus.Message(nil), r.got...)
}

// FailNext makes the next n sends fail with err (wrap with
// connectors.Permanent for a permanent failure).
func (r *Recorder) FailNext(n int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failNext, r.failErr = n, err
}

// Sinks is a connector kind "record" whose sinks record into Recorders by name.
type Sinks struct {
	mu   sync.Mutex
	recs map[string]*Recorder
}

// NewSinks returns an empty set of recorders.
func NewSinks() *Sinks { return &Sinks{recs: map[string]*Recorder{}} }

// Recorder returns (creating) the recorder of a name.
func (s *Sinks) Recorder(name string) *Recorder {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.recs[name]
	if r == nil {
		r = &Recorder{}
		s.recs[name] = r
	}
	return r
}

// Registry returns a connector registry holding the "record" kind.
func (s *Sinks) Registry() *connectors.Registry {
	reg := connectors.NewRegistry()
	if err := reg.Register(s.Spec()); err != nil {
		panic(err)
	}
	return reg
}

// Spec is the "record" connector kind.
func (s *Sinks) Spec() connectors.Spec {
	return connectors.Spec{
		Name:    "record",
		Summary: "test sink recording what it receives",
		Sink: &connectors.SinkSpec{
			NewConfig: func() any { return &SinkConfig{} },
			New: func(cfg any, deps connectors.Deps) (connectors.Sink, error) {
				c := cfg.(*SinkConfig)
				if c.Name == "" {
					return nil, errors.New("record: name is required")
				}
				return &recordSink{r: s.Recorder(c.Name)}, nil
			},
		},
	}
}

type recordSink struct{ r *Recorder }

func (s *recordSink) Send(ctx context.Context, msg bus.Message) error {
	r := s.r
	if r.Delay > 0 {
		select {
		case <-time.After(r.Delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failNext > 0 {
		r.failNext--
		return fmt.Errorf("record: induced failure: %w", r.failErr)
	}
	r.got = append(r.got, msg)
	return nil
}

func (s *recordSink) Request(ctx context.Context, msg bus.Message) (bus.Message, error) {
	r := s.r
	r.mu.Lock()
	r.Requests++
	ans := r.Answer
	r.mu.Unlock()
	out := msg
	if ans != nil {
		out.Body = ans(msg)
	}
	return out, nil
}

func (s *recordSink) Endpoint() string { return "record:" }
