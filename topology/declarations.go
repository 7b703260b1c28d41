package topology

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// DeclarationsFile is the name of the topics declaration file in the route
// directory (configs/routes/topics.yaml). The route loader skips it.
const DeclarationsFile = "topics.yaml"

// Declarations is the topics declaration file: the bus topics with one end
// outside the hub.
type Declarations struct {
	// Topics are the declared topics.
	Topics []TopicDecl `yaml:"topics"`

	// file is the path the declarations were read from.
	file string
}

// The ends of a topic that may lie outside the hub.
const (
	// ExternalConsumer: a system outside the hub reads the topic.
	ExternalConsumer = "consumer"
	// ExternalProducer: a system outside the hub writes the topic.
	ExternalProducer = "producer"
)

// TopicDecl declares a topic one of whose ends lies outside the hub.
type TopicDecl struct {
	// Topic is the bus topic.
	Topic string `yaml:"topic"`
	// External is the end outside the hub: consumer (a system outside the
	// hub reads the topic) or producer (one writes it).
	External string `yaml:"external"`
	// System names the system outside the hub.
	System string `yaml:"system"`
	// Reason says why this exchange goes over the bus rather than through a
	// route or a service of the hub.
	Reason string `yaml:"reason"`

	// line is the line of the entry in the file.
	line int
}

// Place returns where the declaration is.
func (d Declarations) Place(t TopicDecl) Place { return Place{File: d.file, Line: t.line} }

// LoadDeclarations reads dir/topics.yaml. A missing file declares nothing.
// Every problem of the file is returned (with file and line).
func LoadDeclarations(dir string) (Declarations, []Problem) {
	path := filepath.Join(dir, DeclarationsFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Declarations{}, nil
	}
	if err != nil {
		return Declarations{}, []Problem{{Place: Place{File: path}, Message: err.Error()}}
	}
	return ParseDeclarations(path, data)
}

var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)

// ParseDeclarations decodes a topics declaration file strictly (an unknown
// key is an error) and checks every entry.
func ParseDeclarations(path string, data []byte) (Declarations, []Problem) {
	d := Declarations{file: path}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&d); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		msgs := []string{err.Error()}
		if errors.As(err, &te) {
			msgs = te.Errors
		}
		var out []Problem
		for _, m := range msgs {
			p := Problem{Place: Place{File: path}, Message: fmt.Errorf("%w: %s", ErrDeclarations, m).Error()}
			if sm := yamlLine.FindStringSubmatch(m); sm != nil {
				p.Line, _ = strconv.Atoi(sm[1])
				p.Message = fmt.Errorf("%w: %s", ErrDeclarations, sm[2]).Error()
			}
			out = append(out, p)
		}
		return Declarations{}, out
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	lines := entryLines(&root)
	var problems []Problem
	seen := map[string]int{}
	for i := range d.Topics {
		t := &d.Topics[i]
		if i < len(lines) {
			t.line = lines[i]
		}
		bad := func(format string, args ...any) {
			problems = append(problems, Problem{Place: Place{File: path, Line: t.line}, Topic: t.Topic,
				Message: fmt.Sprintf("topics[%d]: ", i) + fmt.Sprintf(format, args...)})
		}
		if t.Topic == "" {
			bad("topic is required")
		}
		if t.External != ExternalConsumer && t.External != ExternalProducer {
			bad("external: %q is not consumer or producer", t.External)
		}
		if t.System == "" {
			bad("system: name the system outside the hub")
		}
		if t.Reason == "" {
			bad("reason: say why the topic leaves the hub this way")
		}
		if prev, dup := seen[t.Topic+"/"+t.External]; dup && t.Topic != "" {
			bad("topic %q is declared external %s twice (also line %d)", t.Topic, t.External, prev)
		}
		seen[t.Topic+"/"+t.External] = t.line
	}
	if problems != nil {
		return Declarations{}, problems
	}
	return d, nil
}

// entryLines returns the line of each item of the top-level topics list.
func entryLines(root *yaml.Node) []int {
	if root == nil || len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "topics" && m.Content[i+1].Kind == yaml.SequenceNode {
			var out []int
			for _, it := range m.Content[i+1].Content {
				out = append(out, it.Line)
			}
			return out
		}
	}
	return nil
}
