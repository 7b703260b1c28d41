package topology

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/shanghai-mca/mzhub/bus"
)

// Direction of a partner link, seen from the hub.
type Direction string

// Directions.
const (
	// In: the partners send to the hub.
	In Direction = "in"
	// Out: the hub sends to the partners.
	Out Direction = "out"
)

// Service is a hub service's declaration of what it exchanges: the bus
// topics it publishes and consumes, and the partners it talks to directly
// (not through a route).
type Service struct {
	// Name identifies the service ("funeral", "disbursement").
	Name string
	// Summary says in a few words what the service does, for the console.
	Summary string
	// Produces lists the bus topics the service publishes.
	Produces []string
	// Consumes lists the bus topics the service consumes.
	Consumes []string
	// Partners lists the partners the service exchanges with directly.
	Partners []PartnerLink

	// place is where RegisterService was called (set by it).
	place Place
}

// PartnerLink is one direct exchange between a service and a group of partners.
type PartnerLink struct {
	// Name names the partners for people ("banks", "funeral homes").
	Name string
	// Partners are the partner ids of the group; a trailing * matches a
	// prefix ("bank.*").
	Partners []string
	// Direction is In when the partners send to the service, Out when the
	// service sends to them.
	Direction Direction
	// Channel is the transport (http, sftp).
	Channel string
	// Flows are the monitor flows of the exchange (the flow of its events):
	// they meter the link (mzhub_exchanges_total). None: not metered.
	Flows []string
}

// Place returns where the declaration was registered (file and line,
// relative to the module root).
func (s Service) Place() Place { return s.place }

// Publishes tells whether the declaration lists topic among Produces.
func (s Service) Publishes(topic string) bool { return slices.Contains(s.Produces, topic) }

// Publisher puts messages on the bus; bus.Bus satisfies it.
type Publisher interface {
	Publish(ctx context.Context, topic string, msgs ...bus.Message) error
}

// Guard returns a publisher that passes to p only the topics s declares
// and refuses any other with ErrUndeclaredTopic. A service publishes
// through it, so its declaration is the list of what it publishes.
func (s Service) Guard(p Publisher) Publisher { return guard{s: s, p: p} }

type guard struct {
	s Service
	p Publisher
}

func (g guard) Publish(ctx context.Context, topic string, msgs ...bus.Message) error {
	if !g.s.Publishes(topic) {
		return fmt.Errorf("service %s: publish %q: %w (declared: %v)", g.s.Name, topic, ErrUndeclaredTopic, g.s.Produces)
	}
	return g.p.Publish(ctx, topic, msgs...)
}

// validate reports what is wrong with a declaration.
func (s Service) validate() error {
	var problems []string
	if s.Name == "" {
		problems = append(problems, "a name is required")
	}
	for _, t := range append(append([]string(nil), s.Produces...), s.Consumes...) {
		if t == "" {
			problems = append(problems, "an empty topic")
		}
	}
	for i, l := range s.Partners {
		if l.Name == "" || len(l.Partners) == 0 {
			problems = append(problems, fmt.Sprintf("partners[%d]: a name and partner ids are required", i))
		}
		if l.Direction != In && l.Direction != Out {
			problems = append(problems, fmt.Sprintf("partners[%d]: direction %q is not in or out", i, l.Direction))
		}
	}
	if problems != nil {
		return fmt.Errorf("topology: service %q: %s", s.Name, strings.Join(problems, "; "))
	}
	return nil
}

// services is the init-time registry of service declarations.
var (
	servicesMu sync.Mutex
	services   = map[string]Service{}
)

// RegisterService adds a service's declaration. Call it from the service
// package's init; an invalid or duplicate declaration is a programmer
// error and panics at start-up.
func RegisterService(s Service) {
	if err := s.validate(); err != nil {
		panic(err)
	}
	if _, file, line, ok := runtime.Caller(1); ok {
		s.place = Place{File: relToModule(file), Line: line}
	}
	servicesMu.Lock()
	defer servicesMu.Unlock()
	if _, dup := services[s.Name]; dup {
		panic(fmt.Sprintf("topology: service %q registered twice", s.Name))
	}
	services[s.Name] = s
}

// Services returns the registered declarations, sorted by name.
func Services() []Service {
	servicesMu.Lock()
	defer servicesMu.Unlock()
	out := make([]Service, 0, len(services))
	for _, s := range services {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// moduleRoot is the directory of the module's source as the compiler saw
// it (an absolute path, or the module path with -trimpath).
var moduleRoot = func() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return ""
	}
	return filepath.Dir(filepath.Dir(file))
}()

// relToModule makes a source file name relative to the module root, so
// lint messages name services/funeral/topology.go wherever the binary was built.
func relToModule(file string) string {
	if moduleRoot != "" && strings.HasPrefix(file, moduleRoot+"/") {
		return strings.TrimPrefix(file, moduleRoot+"/")
	}
	return file
}
