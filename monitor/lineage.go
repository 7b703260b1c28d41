package monitor

import (
	"context"
	"fmt"
	"sort"
)

// Lineage is the family of an exchange: its ancestors (following ParentIDs)
// and descendants (following Store.Children), with their events.
type Lineage struct {
	// Root is the exchange asked about.
	Root string
	// Events of every exchange in the family, oldest first.
	Events []Event
	// Links between the exchanges.
	Links []Link
}

// IDs lists the exchanges of the family, sorted.
func (l Lineage) IDs() []string {
	seen := map[string]bool{}
	for _, e := range l.Events {
		seen[e.ExchangeID] = true
	}
	out := make([]string, 0, len(seen))
	for id := range seen {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// TraceLineage walks up to depth generations up and down from id.
func TraceLineage(ctx context.Context, s Store, id string, depth int) (Lineage, error) {
	l := Lineage{Root: id}
	seen := map[string]bool{id: true}
	links := map[Link]bool{}
	var events []Event
	frontier := []string{id}
	// Ancestors: read the events of the frontier, follow their parents.
	for d := 0; d <= depth && len(frontier) > 0; d++ {
		evs, err := s.Search(ctx, Filter{ExchangeIDs: frontier, Limit: 1000})
		if err != nil {
			return l, fmt.Errorf("monitor: lineage of %s: %w", id, err)
		}
		events = append(events, evs...)
		var next []string
		for _, e := range evs {
			for _, p := range e.ParentIDs {
				links[Link{Parent: p, Child: e.ExchangeID}] = true
				if !seen[p] {
					seen[p] = true
					next = append(next, p)
				}
			}
		}
		frontier = next
	}
	// Descendants.
	frontier = []string{id}
	for d := 0; d < depth && len(frontier) > 0; d++ {
		kids, err := s.Children(ctx, frontier, 1000)
		if err != nil {
			return l, fmt.Errorf("monitor: lineage of %s: %w", id, err)
		}
		var next []string
		for _, k := range kids {
			links[k] = true
			if !seen[k.Child] {
				seen[k.Child] = true
				next = append(next, k.Child)
			}
		}
		if len(next) > 0 {
			evs, err := s.Search(ctx, Filter{ExchangeIDs: next, Limit: 1000})
			if err != nil {
				return l, fmt.Errorf("monitor: lineage of %s: %w", id, err)
			}
			events = append(events, evs...)
		}
		frontier = next
	}
	sort.SliceStable(events, func(i, j int) bool { return events[i].Time.Before(events[j].Time) })
	l.Events = events
	for k := range links {
		l.Links = append(l.Links, k)
	}
	sort.Slice(l.Links, func(i, j int) bool {
		if l.Links[i].Parent != l.Links[j].Parent {
			return l.Links[i].Parent < l.Links[j].Parent
		}
		return l.Links[i].Child < l.Links[j].Child
	})
	return l, nil
}
