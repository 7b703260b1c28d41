package config

import (
	"fmt"
	"io"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"sync"

	"github.com/shanghai-mca/mzhub/config/structdoc"
)

// Section is a top-level block of the configuration file owned by a package
// outside config (a service). The owner registers it in init with
// RegisterSection; config then decodes it strictly, overrides it from the
// environment, validates it, resolves its paths and documents it in the
// generated reference and schema exactly as it does its own keys. config
// never imports the owner: the owner imports config.
type Section struct {
	// Key is the section's key at the top of the file, in snake_case
	// ("funeral"). It must not be one of Config's own keys.
	Key string
	// Doc describes the section in a sentence or two; the reference prints
	// it above the section's table.
	Doc string
	// Default returns the section's defaults: a struct value (not a
	// pointer) with yaml tags and a doc comment on every field, whose
	// value-receiver Validate method reports every problem at once. When
	// its pointer has a ResolvePaths method, Config.Resolve calls it.
	Default func() any
}

// Validator is what every section's struct implements: Validate reports
// every problem at once (errors.Join), naming each key by its full path
// ("funeral.rate_per_second"), and does no I/O.
type Validator interface {
	Validate() error
}

// PathResolver is implemented by a pointer to a section's struct when the
// section holds file paths: ResolvePaths makes its relative paths absolute
// against base, as Config.Resolve does for Config's own paths.
type PathResolver interface {
	ResolvePaths(base string)
}

// Registry holds registered sections. The package-level functions (Default,
// Decode, Load, Reference, Schema) use the process's registry, filled by the
// services' init functions; tests build their own with NewRegistry.
type Registry struct {
	mu       sync.RWMutex
	sections map[string]Section
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{sections: map[string]Section{}} }

var registry = NewRegistry()

// RegisterSection adds a section to the process's registry. Call it from
// the owning package's init. A malformed section or a key registered twice
// is a programmer error: it panics at start-up.
func RegisterSection(s Section) { registry.Register(s) }

// Sections lists the sections of the process's registry, sorted by key.
func Sections() []Section { return registry.Sections() }

var sectionKeyRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Register adds a section; it panics on a malformed section or a key taken
// by Config itself or by another section.
func (r *Registry) Register(s Section) {
	if err := checkSection(s); err != nil {
		panic(fmt.Sprintf("config: register section %q: %v", s.Key, err))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.sections[s.Key]; dup {
		panic(fmt.Sprintf("config: register section %q: registered twice", s.Key))
	}
	r.sections[s.Key] = s
}

func checkSection(s Section) error {
	if !sectionKeyRE.MatchString(s.Key) {
		return fmt.Errorf("key: want snake_case (%s)", sectionKeyRE)
	}
	for _, f := range structdoc.Fields(reflect.ValueOf(Config{}), "") {
		if f.Name == s.Key {
			return fmt.Errorf("key: taken by Config.%s", f.StructField.Name)
		}
	}
	if s.Doc == "" {
		return fmt.Errorf("doc: required")
	}
	if s.Default == nil {
		return fmt.Errorf("default: required")
	}
	v := s.Default()
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Struct {
		return fmt.Errorf("default: returns %T, want a struct value", v)
	}
	if _, ok := v.(Validator); !ok {
		return fmt.Errorf("default: %s has no value-receiver Validate() error", t)
	}
	return nil
}

// Sections lists the registered sections, sorted by key.
func (r *Registry) Sections() []Section {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]Section, 0, len(r.sections))
	for _, s := range r.sections {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Default returns Default's core values with every registered section at
// its defaults.
func (r *Registry) Default() Config {
	c := defaultCore()
	secs := r.Sections()
	c.sections = make(map[string]sectionValue, len(secs))
	for _, s := range secs {
		c.sections[s.Key] = sectionValue{doc: s.Doc, v: s.Default()}
	}
	return c
}

// Decode is Decode with this registry's sections.
func (r *Registry) Decode(name string, rd io.Reader) (Config, error) {
	return decode(r.Default(), name, rd)
}

// Load is Load with this registry's sections.
func (r *Registry) Load(path string, getenv func(string) string) (Config, error) {
	return load(r.Default(), path, getenv)
}

// Reference is Reference with this registry's sections.
func (r *Registry) Reference(root string) (string, error) { return reference(r.Default(), root) }

// Schema is Schema with this registry's sections.
func (r *Registry) Schema(root string) ([]byte, error) { return schema(r.Default(), root) }

// sectionValue is a section's value in a Config: a struct value, never a
// pointer, so copies of a Config never share it.
type sectionValue struct {
	doc string
	v   any
}

// SectionOf returns the value of the section under key, and false when c
// has no such section or it is not a T. Services wrap it in a typed
// accessor (funeral.ConfigFrom).
func SectionOf[T any](c Config, key string) (T, bool) {
	v, ok := c.sections[key].v.(T)
	return v, ok
}

// SetSection replaces the value of the section under key, which c must
// already hold (it is registered) with the same type. It is for code that
// builds a configuration rather than loading one: tests and the demo.
func SetSection[T any](c *Config, key string, v T) error {
	old, ok := c.sections[key]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownSection, key)
	}
	if _, same := old.v.(T); !same {
		return fmt.Errorf("config: section %q holds %T, not %T", key, old.v, v)
	}
	c.setSection(key, v)
	return nil
}

// setSection stores v under key in a copy of the sections map, so that
// configs copied before are not changed.
func (c *Config) setSection(key string, v any) {
	m := make(map[string]sectionValue, len(c.sections))
	for k, sv := range c.sections {
		m[k] = sv
	}
	sv := m[key]
	sv.v = v
	m[key] = sv
	c.sections = m
}

// sectionKeys returns the keys of c's sections, sorted.
func (c Config) sectionKeys() []string {
	keys := make([]string, 0, len(c.sections))
	for k := range c.sections {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// document is the shape of the file for one Config: a struct built at run
// time with Config's own keys inline and one field per section, so that
// strict decoding (with line numbers), the environment overrides, the
// reference and the schema treat sections like Config's own keys.
type document struct {
	v    reflect.Value // addressable struct
	keys []string      // section key of field i+1
	docs []string
}

// document returns c as a document value holding copies of its values.
func (c Config) document() document {
	keys := c.sectionKeys()
	sf := []reflect.StructField{{Name: "Config", Type: reflect.TypeOf(Config{}), Tag: `yaml:",inline"`}}
	docs := make([]string, len(keys))
	for i, k := range keys {
		sv := c.sections[k]
		docs[i] = sv.doc
		sf = append(sf, reflect.StructField{
			Name: "Section" + strconv.Itoa(i),
			Type: reflect.TypeOf(sv.v),
			Tag:  reflect.StructTag(`yaml:"` + k + `" doc:` + strconv.Quote(sv.doc)),
		})
	}
	v := reflect.New(reflect.StructOf(sf)).Elem()
	v.Field(0).Set(reflect.ValueOf(c))
	for i, k := range keys {
		v.Field(i + 1).Set(reflect.ValueOf(c.sections[k].v))
	}
	return document{v: v, keys: keys, docs: docs}
}

// fieldTypes lists the types of the document's fields (Config and each
// section's struct), whose doc comments the reference and schema read: the
// run-time type itself belongs to no package.
func (d document) fieldTypes() []reflect.Type {
	t := d.v.Type()
	out := make([]reflect.Type, t.NumField())
	for i := range out {
		out[i] = t.Field(i).Type
	}
	return out
}

// config returns the Config the document holds, with fresh section values.
func (d document) config() Config {
	c := d.v.Field(0).Interface().(Config)
	c.sections = make(map[string]sectionValue, len(d.keys))
	for i, k := range d.keys {
		c.sections[k] = sectionValue{doc: d.docs[i], v: d.v.Field(i + 1).Interface()}
	}
	return c
}
