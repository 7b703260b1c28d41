package routes

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/shanghai-mca/mzhub/config/structdoc"
	"github.com/shanghai-mca/mzhub/connectors"
)

// StepSpec describes a route step kind the way connectors.Spec describes a
// connector kind: a name (the key that selects the step in a route file),
// a one-line summary and a config type whose defaults, field types and
// field doc comments drive strict decoding, validation (`mzhub lint`) and
// the generated reference in docs/routes.md.
//
// Steps run inside the engine's runner, so only this package registers
// them (in init, as connectors do with connectors.Register).
type StepSpec struct {
	// Name is the step's key in a route file (map, filter, ...).
	Name string
	// Summary is one line for docs.
	Summary string
	// NewConfig returns a pointer to the step's config struct with its
	// defaults filled in. The config checks itself against its route and
	// builds the running step.
	NewConfig func() any
}

// stepConfig is what every step's config implements.
type stepConfig interface {
	// check reports the problems of the config within its route (paths
	// relative to the step); it does no I/O.
	check(c *stepCheck)
	// build compiles the running step.
	build(b *stepBuild) (step, error)
}

// stepRegistry holds the step kinds in registration order.
type stepRegistry struct {
	specs map[string]StepSpec
	order []string
}

// builtinSteps is the init-time registry of the engine's steps.
var builtinSteps = &stepRegistry{specs: map[string]StepSpec{}}

// registerStep adds a step kind; a programmer error (empty or duplicate
// name, a config that is not a stepConfig) panics at start-up.
func registerStep(s StepSpec) {
	if s.Name == "" || s.NewConfig == nil {
		panic(fmt.Sprintf("routes: step spec %q without a name or NewConfig", s.Name))
	}
	if _, dup := builtinSteps.specs[s.Name]; dup {
		panic(fmt.Sprintf("routes: step %q registered twice", s.Name))
	}
	if _, ok := s.NewConfig().(stepConfig); !ok {
		panic(fmt.Sprintf("routes: step %q: config %T does not check and build itself", s.Name, s.NewConfig()))
	}
	builtinSteps.specs[s.Name] = s
	builtinSteps.order = append(builtinSteps.order, s.Name)
}

// StepSpecs lists the step kinds in the order they are documented.
func StepSpecs() []StepSpec {
	out := make([]StepSpec, 0, len(builtinSteps.order))
	for _, n := range builtinSteps.order {
		out = append(out, builtinSteps.specs[n])
	}
	return out
}

// stepNames is the list of step kinds for messages ("map, validate, ...").
func stepNames() string { return strings.Join(builtinSteps.order, ", ") }

// UnmarshalYAML decodes a step: an optional name and one key naming a
// registered step kind, whose value is decoded strictly into the kind's
// config. An unknown key is an error with its line; no kind or several
// kinds are left for validation to report.
func (s *Step) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: a step is a mapping (name and one of %s)", n.Line, stepNames())}}
	}
	*s = Step{}
	var msgs []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "name" {
			if err := v.Decode(&s.Name); err != nil {
				msgs = append(msgs, yamlMessages(err)...)
			}
			continue
		}
		spec, ok := builtinSteps.specs[k.Value]
		if !ok {
			msgs = append(msgs, fmt.Sprintf("line %d: unknown step %q (known: %s)", k.Line, k.Value, stepNames()))
			continue
		}
		s.kinds = append(s.kinds, k.Value)
		cfg := spec.NewConfig()
		if err := decodeStrict(v, cfg); err != nil {
			msgs = append(msgs, yamlMessages(err)...)
			continue
		}
		s.Kind, s.Config = k.Value, cfg
	}
	if len(s.kinds) != 1 {
		s.Kind, s.Config = "", nil
	}
	if msgs != nil {
		return &yaml.TypeError{Errors: msgs}
	}
	return nil
}

// decodeStrict decodes a YAML subtree into out (a pointer, usually to a
// config with defaults filled in) and rejects unknown keys. Errors are a
// *yaml.TypeError whose messages start "line N: " with lines of the file
// the node came from.
func decodeStrict(n *yaml.Node, out any) error {
	if n == nil || n.Kind == 0 {
		return nil
	}
	var msgs []string
	unknownKeys(n, reflect.TypeOf(out), &msgs)
	if err := n.Decode(out); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return err
		}
		msgs = append(msgs, te.Errors...)
	}
	if msgs != nil {
		return &yaml.TypeError{Errors: msgs}
	}
	return nil
}

var (
	yamlNodeType    = reflect.TypeOf(yaml.Node{})
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
)

// unknownKeys reports every mapping key of n that t (walked with the
// iterator the config reference uses) does not have.
func unknownKeys(n *yaml.Node, t reflect.Type, msgs *[]string) {
	for n.Kind == yaml.AliasNode || n.Kind == yaml.DocumentNode {
		if n.Kind == yaml.AliasNode {
			n = n.Alias
		} else if len(n.Content) > 0 {
			n = n.Content[0]
		} else {
			return
		}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == yamlNodeType || reflect.PointerTo(t).Implements(unmarshalerType) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		if t == structdoc.DurationType || n.Kind != yaml.MappingNode {
			return
		}
		fields := map[string]reflect.Type{}
		for _, f := range structdoc.TypeFields(t, "") {
			fields[f.Name] = f.Type
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := fields[k.Value]
			if !ok {
				*msgs = append(*msgs, fmt.Sprintf("line %d: field %s not found in type %s", k.Line, k.Value, t))
				continue
			}
			unknownKeys(n.Content[i+1], ft, msgs)
		}
	case reflect.Slice, reflect.Array:
		if n.Kind == yaml.SequenceNode {
			for _, c := range n.Content {
				unknownKeys(c, t.Elem(), msgs)
			}
		}
	case reflect.Map:
		if n.Kind == yaml.MappingNode {
			for i := 1; i < len(n.Content); i += 2 {
				unknownKeys(n.Content[i], t.Elem(), msgs)
			}
		}
	}
}

// yamlMessages lists the messages of a decoding error.
func yamlMessages(err error) []string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return te.Errors
	}
	return []string{strings.TrimPrefix(err.Error(), "yaml: ")}
}

var lineMessage = regexp.MustCompile(`^line (\d+): (.*)$`)

// splitLine splits "line N: message" (N 0 when absent).
func splitLine(msg string) (int, string) {
	if m := lineMessage.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, m[2]
	}
	return 0, msg
}

// Built-in endpoint kinds of the engine.
const (
	kindBus      = "bus"
	kindSchedule = "schedule"
)

// engineKinds are the engine's own endpoint kinds, described with the spec
// of a connector kind so that they decode, lint and document the same way;
// the engine builds them itself (their New is never called).
var engineKinds = map[string]connectors.Spec{
	kindBus: {
		Name:    kindBus,
		Summary: "the hub's bus: as a source the route consumes a topic, as a sink it publishes to one",
		Source:  &connectors.SourceSpec{NewConfig: func() any { return &BusEndpointConfig{} }},
		Sink:    &connectors.SinkSpec{NewConfig: func() any { return &BusEndpointConfig{} }},
	},
	kindSchedule: {
		Name:    kindSchedule,
		Summary: "a timer: emits one message every interval (a poll trigger for routes whose first step fetches)",
		Source:  &connectors.SourceSpec{NewConfig: func() any { return &ScheduleConfig{} }},
	},
}

// lookupKind finds an endpoint kind: the engine's own, else a connector.
func lookupKind(reg *connectors.Registry, kind string) (connectors.Spec, error) {
	if s, ok := engineKinds[kind]; ok {
		return s, nil
	}
	s, err := reg.Lookup(kind)
	if err != nil {
		return connectors.Spec{}, fmt.Errorf("kind %q: unknown connector (known: %v, bus, schedule)", kind, reg.Names())
	}
	return s, nil
}

// roleConfig returns the constructor of the config of a kind's role (nil
// when the kind does not play it). Lookups use the sink role.
func roleConfig(s connectors.Spec, role string) func() any {
	if role == roleSource {
		if s.Source == nil {
			return nil
		}
		return s.Source.NewConfig
	}
	if s.Sink == nil {
		return nil
	}
	return s.Sink.NewConfig
}

// decodeEndpoint decodes ep.Config strictly into the config of its kind's
// role and validates it. It returns the config and the line of the first
// problem (the config's line when the problem has none of its own).
func decodeEndpoint(reg *connectors.Registry, role string, ep *Endpoint) (any, int, error) {
	line := ep.Config.Line
	if ep.Kind == "" {
		return nil, line, fmt.Errorf("kind is required")
	}
	spec, err := lookupKind(reg, ep.Kind)
	if err != nil {
		return nil, line, err
	}
	newConfig := roleConfig(spec, role)
	if newConfig == nil {
		if role == roleSource {
			return nil, line, fmt.Errorf("connector %q has no source", ep.Kind)
		}
		return nil, line, fmt.Errorf("connector %q has no sink", ep.Kind)
	}
	cfg := newConfig()
	if err := decodeStrict(&ep.Config, cfg); err != nil {
		msgs := yamlMessages(err)
		first := line
		for i, m := range msgs {
			n, rest := splitLine(m)
			if i == 0 && n > 0 {
				first = n
			}
			msgs[i] = rest
		}
		return nil, first, fmt.Errorf("config: %s", strings.Join(msgs, "; "))
	}
	if v, ok := cfg.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return nil, line, err
		}
	}
	return cfg, line, nil
}
