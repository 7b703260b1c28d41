package cardcenter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/httpx"
	"github.com/shanghai-mca/mzhub/monitor"
)

// Card statuses.
const (
	StatusNormal    = "normal"
	StatusLost      = "lost"
	StatusFrozen    = "frozen"
	StatusCancelled = "cancelled"
	// StatusNone: the card center knows no card of the person.
	StatusNone = "none"
)

// StatusRequest is the body of POST {url}/api/v1/card-status.
type StatusRequest struct {
	// IDNumbers asked (at most the card center's batch limit).
	IDNumbers []string `json:"id_numbers"`
}

// StatusAnswer is its answer.
type StatusAnswer struct {
	// Statuses, one per ID number asked.
	Statuses []CardStatus `json:"statuses"`
}

// CardStatus is one person's card status.
type CardStatus struct {
	// IDNumber and Status (normal, lost, frozen, cancelled, none).
	IDNumber string `json:"id_number"`
	Status   string `json:"status"`
}

// StatusClient asks card statuses in batches.
type StatusClient struct {
	cfg   Config
	c     *httpx.Client
	ev    connectors.Events
	clock clock.Clock
}

// NewStatusClient returns a client of cfg.URL.
func NewStatusClient(cfg Config, deps connectors.Deps) (*StatusClient, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.URL == "" {
		return nil, errors.New("cardcenter: status: no url")
	}
	c, err := httpx.NewClient("cardcenter-status", cfg.Client)
	if err != nil {
		return nil, err
	}
	if deps.Clock == nil {
		deps.Clock = clock.Real{}
	}
	return &StatusClient{cfg: cfg, c: c, ev: deps.Events, clock: deps.Clock}, nil
}

// ObserveBreaker reports the status queries' circuit breaker changes as
// the card center's events (the monitor's partner_down alert).
func (s *StatusClient) ObserveBreaker(events connectors.Events) { s.c.Observe(events, Partner) }

// Query returns the card status of each ID number, asking in batches of
// status_batch with status_parallel batches in flight, within the
// client's rate limit. Any batch failing fails the query (no status is
// guessed). One monitor event per query.
func (s *StatusClient) Query(ctx context.Context, ids []string) (map[string]string, error) {
	start := s.clock.Now()
	out := make(map[string]string, len(ids))
	var mu sync.Mutex
	var first error
	sem := make(chan struct{}, s.cfg.StatusParallel)
	var wg sync.WaitGroup
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i := 0; i < len(ids); i += s.cfg.StatusBatch {
		batch := ids[i:min(i+s.cfg.StatusBatch, len(ids))]
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			got, err := s.batch(ctx, batch)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					first = err
					cancel()
				}
				return
			}
			for k, v := range got {
				out[k] = v
			}
		}()
	}
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	ev := monitor.Event{Time: s.clock.Now(), Partner: Partner, Flow: "card-status", Direction: monitor.Outbound, Channel: "http",
		Type: monitor.Fetched, Status: monitor.OK, Records: int64(len(out)), Duration: s.clock.Now().Sub(start), Component: "cardcenter"}
	if first != nil {
		ev.Type, ev.Status, ev.ErrorMessage, ev.ErrorClass = monitor.Failed, monitor.Error, first.Error(), "transient"
		if errors.Is(first, httpx.ErrCircuitOpen) {
			ev.ErrorCode = "breaker"
		}
	}
	if s.ev != nil {
		s.ev.Emit(ev)
	}
	if first != nil {
		return nil, fmt.Errorf("cardcenter: card status: %w", first)
	}
	return out, nil
}

func (s *StatusClient) batch(ctx context.Context, ids []string) (map[string]string, error) {
	body, _ := json.Marshal(StatusRequest{IDNumbers: ids})
	resp, err := s.c.Do(ctx, httpx.Request{Method: "POST", URL: strings.TrimRight(s.cfg.URL, "/") + "/api/v1/card-status", Body: body,
		Headers: map[string]string{"Content-Type": "application/json"}})
	if err != nil {
		return nil, err
	}
	var ans StatusAnswer
	if err := json.Unmarshal(resp.Body(), &ans); err != nil || resp.StatusCode() != 200 || len(ans.Statuses) != len(ids) {
		return nil, fmt.Errorf("%w: card status of %d persons: status %d, %d answers", ErrBadAnswer, len(ids), resp.StatusCode(), len(ans.Statuses))
	}
	out := make(map[string]string, len(ids))
	for _, st := range ans.Statuses {
		switch st.Status {
		case StatusNormal, StatusLost, StatusFrozen, StatusCancelled, StatusNone:
		default:
			return nil, fmt.Errorf("%w: card status %q", ErrBadAnswer, st.Status)
		}
		out[st.IDNumber] = st.Status
	}
	for _, id := range ids {
		if _, ok := out[id]; !ok {
			return nil, fmt.Errorf("%w: no status for an ID number asked", ErrBadAnswer)
		}
	}
	return out, nil
}
