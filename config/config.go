package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/monitor"
	"github.com/shanghai-mca/mzhub/security"
	"github.com/shanghai-mca/mzhub/store"
)

// Config is the whole configuration of one mzhub process.
type Config struct {
	// Profile is "embedded" (SQLite state, local bus, SQLite monitor; one
	// process) or "cluster" (PostgreSQL, Pulsar, ClickHouse; N replicas).
	Profile string `yaml:"profile"`
	// Node names this replica in leases, events, logs and the Pulsar
	// producer names; defaults to the host name. It must be unique among
	// the live replicas of a cluster: at start the hub claims it in the
	// state database and refuses to start while another live replica
	// holds it (after waiting one replica.lease_ttl for a replica that
	// died to lose its claim).
	Node string `yaml:"node"`
	// Replica configures how the replicas sharing one state database
	// share the periodic jobs.
	Replica ReplicaConfig `yaml:"replica"`
	// DataDir holds local files (state database, keys, spool, file staging)
	// unless a more specific path is set. Relative paths in this file are
	// relative to the working directory.
	DataDir string `yaml:"data_dir"`
	// Log configures structured logging.
	Log LogConfig `yaml:"log"`
	// HTTP configures the single listener (health, metrics, partner API, console).
	HTTP HTTPConfig `yaml:"http"`
	// Store is the state database.
	Store store.Config `yaml:"store"`
	// Bus carries messages between sources and sinks.
	Bus bus.Config `yaml:"bus"`
	// Monitor records exchange events and serves the console.
	Monitor monitor.Config `yaml:"monitor"`
	// Security configures keys and access control.
	Security security.Config `yaml:"security"`
	// Paths locates partner, route and mapping files.
	Paths PathsConfig `yaml:"paths"`

	// sections holds the registered sections (services' settings) by key;
	// SectionOf reads them. Values are structs, so copies never share one.
	sections map[string]sectionValue
}

// LogConfig configures logging.
type LogConfig struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is "json" (production), "text" or "auto" (text on a terminal, JSON otherwise).
	Format string `yaml:"format"`
}

// HTTPConfig configures the HTTP listener.
type HTTPConfig struct {
	// Listen is the address to listen on (host:port). Use 127.0.0.1 unless a
	// reverse proxy or load balancer fronts the hub.
	Listen string `yaml:"listen"`
	// MetricsListen is where /metrics is served (Prometheus), apart from the API and the console:
	// keep it on loopback or a management network. Empty serves /metrics on the main listener
	// instead, only to logged-in console users.
	MetricsListen string `yaml:"metrics_listen"`
	// Pprof serves Go's runtime profiles (/debug/pprof/: heap, goroutines, CPU) on
	// http.metrics_listen, for measuring memory and CPU in place; off by default, and
	// refused without a metrics_listen (never on the API's or the console's listener).
	Pprof bool `yaml:"pprof"`
	// ShutdownTimeout bounds graceful shutdown: in-flight requests get this long to finish.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// ReadHeaderTimeout bounds reading request headers (slowloris protection).
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, body included: a client sending its body
	// slowly loses the connection after this long.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds a request from the end of its headers to the end of the answer.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout closes a keep-alive connection idle this long.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes is the largest request line plus headers answered normally; larger ones get
	// 431 problem+json, and beyond four times this size the connection is refused outright.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// TLSCertFile and TLSKeyFile enable HTTPS when both are set.
	TLSCertFile string `yaml:"tls_cert_file"`
	// TLSKeyFile is the private key of TLSCertFile.
	TLSKeyFile string `yaml:"tls_key_file"`
}

// ReplicaConfig configures the leases that give each periodic job (and
// each node name) to one live replica at a time.
type ReplicaConfig struct {
	// LeaseTTL is how long a job lease or a node claim lasts without
	// renewal: when a replica dies, another takes its jobs over after at
	// most this long. Leases are renewed every third of it.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
}

// PathsConfig locates the declarative files.
type PathsConfig struct {
	// Partners is the directory of partner files (configs/partners).
	Partners string `yaml:"partners"`
	// Routes is the directory of route files (configs/routes).
	Routes string `yaml:"routes"`
	// Mappings is the directory of layouts, mappings and code tables (configs/mappings).
	Mappings string `yaml:"mappings"`
}

// Default returns the embedded-profile defaults, with every section
// registered in the process at its defaults.
func Default() Config { return registry.Default() }

// defaultCore returns the defaults of Config's own keys.
func defaultCore() Config {
	return Config{
		Profile: "embedded",
		DataDir: "data",
		Log:     LogConfig{Level: "info", Format: "auto"},
		HTTP: HTTPConfig{
			Listen:            "127.0.0.1:8470",
			MetricsListen:     "127.0.0.1:9470",
			ShutdownTimeout:   15 * time.Second,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    32 << 10,
		},
		Replica:  ReplicaConfig{LeaseTTL: 15 * time.Second},
		Store:    store.DefaultConfig(),
		Bus:      bus.DefaultConfig(),
		Monitor:  monitor.DefaultConfig(),
		Security: security.DefaultConfig(),
		Paths:    PathsConfig{Partners: "configs/partners", Routes: "configs/routes", Mappings: "configs/mappings"},
	}
}

// Validate reports every problem at once. It does no I/O.
func (c Config) Validate() error {
	var errs []error
	switch c.Profile {
	case "embedded", "cluster":
	default:
		errs = append(errs, fmt.Errorf("profile: %q: want embedded or cluster", c.Profile))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q: want debug, info, warn or error", c.Log.Level))
	}
	switch c.Log.Format {
	case "json", "text", "auto":
	default:
		errs = append(errs, fmt.Errorf("log.format: %q: want json, text or auto", c.Log.Format))
	}
	if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
		errs = append(errs, fmt.Errorf("http.listen: %q: %w", c.HTTP.Listen, err))
	}
	if c.HTTP.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.HTTP.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("http.metrics_listen: %q: %w", c.HTTP.MetricsListen, err))
		} else if c.HTTP.MetricsListen == c.HTTP.Listen && !strings.HasSuffix(c.HTTP.Listen, ":0") {
			errs = append(errs, errors.New("http.metrics_listen: must differ from http.listen (empty serves /metrics on it, behind the console login)"))
		}
	}
	if c.HTTP.Pprof && c.HTTP.MetricsListen == "" {
		errs = append(errs, errors.New("http.pprof: needs http.metrics_listen (profiles are served only there, never on the main listener)"))
	}
	if c.HTTP.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("http.shutdown_timeout: must be positive"))
	}
	if c.HTTP.ReadHeaderTimeout <= 0 {
		errs = append(errs, errors.New("http.read_header_timeout: must be positive"))
	}
	if c.HTTP.ReadTimeout < c.HTTP.ReadHeaderTimeout {
		errs = append(errs, fmt.Errorf("http.read_timeout: %s: at least http.read_header_timeout", c.HTTP.ReadTimeout))
	}
	if c.HTTP.WriteTimeout <= 0 {
		errs = append(errs, errors.New("http.write_timeout: must be positive"))
	}
	if c.HTTP.IdleTimeout <= 0 {
		errs = append(errs, errors.New("http.idle_timeout: must be positive"))
	}
	if c.HTTP.MaxHeaderBytes < 4096 || c.HTTP.MaxHeaderBytes > 1<<20 {
		errs = append(errs, fmt.Errorf("http.max_header_bytes: %d: want 4096 to 1048576", c.HTTP.MaxHeaderBytes))
	}
	if (c.HTTP.TLSCertFile == "") != (c.HTTP.TLSKeyFile == "") {
		errs = append(errs, errors.New("http.tls_cert_file and http.tls_key_file: set both or neither"))
	}
	if c.Replica.LeaseTTL < time.Second {
		errs = append(errs, fmt.Errorf("replica.lease_ttl: %s: must be at least 1s", c.Replica.LeaseTTL))
	}
	if strings.ContainsAny(c.Node, " \t\n") {
		errs = append(errs, fmt.Errorf("node: %q: no spaces (it names leases and Pulsar producers)", c.Node))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data_dir: required"))
	}
	if c.Profile == "cluster" {
		if c.Store.Driver != "postgres" {
			errs = append(errs, fmt.Errorf("store.driver: %q: the cluster profile needs postgres (replicas share state)", c.Store.Driver))
		}
		if c.Bus.Kind == "local" {
			errs = append(errs, errors.New("bus.kind: local: the cluster profile needs pulsar (replicas share the bus)"))
		}
	}
	subs := []error{c.Store.Validate(), c.Bus.Validate(), c.Monitor.Validate(), c.Security.Validate()}
	for _, k := range c.sectionKeys() {
		subs = append(subs, c.sections[k].v.(Validator).Validate())
	}
	for _, sub := range subs {
		if sub != nil {
			errs = append(errs, sub)
		}
	}
	return errors.Join(errs...)
}

// Load reads the file at path (the embedded default when path is empty),
// applies environment overrides from getenv and validates the result.
func Load(path string, getenv func(string) string) (Config, error) {
	return load(Default(), path, getenv)
}

func load(def Config, path string, getenv func(string) string) (Config, error) {
	var data []byte
	name := "configs/mzhub.yaml (built in)"
	if path == "" {
		data = DefaultFile
	} else {
		b, err := os.ReadFile(path)
		if err != nil {
			return Config{}, fmt.Errorf("config: %w", err)
		}
		data, name = b, path
	}
	cfg, err := decode(def, name, bytes.NewReader(data))
	if err != nil {
		return Config{}, err
	}
	if getenv == nil {
		getenv = os.Getenv
	}
	if err := checkRetiredEnv(getenv); err != nil {
		return Config{}, fmt.Errorf("config: %s: %w", name, err)
	}
	if err := ApplyEnv(&cfg, getenv); err != nil {
		return Config{}, fmt.Errorf("config: %s: %w", name, err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("config: %s: invalid:\n%w", name, err)
	}
	return cfg, nil
}

// Decode strictly decodes YAML onto the defaults: unknown keys, wrong types
// and several documents are errors that name the line. It does not validate.
func Decode(name string, r io.Reader) (Config, error) { return decode(Default(), name, r) }

func decode(def Config, name string, r io.Reader) (Config, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return Config{}, fmt.Errorf("config: %s: %w", name, err)
	}
	if err := checkRetired(data); err != nil {
		return Config{}, fmt.Errorf("config: %s: %w", name, err)
	}
	doc := def.document()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(doc.v.Addr().Interface()); err != nil {
		if errors.Is(err, io.EOF) {
			return def, nil
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			// Name the run-time document type as the file's type.
			for i, e := range te.Errors {
				te.Errors[i] = strings.ReplaceAll(e, doc.v.Type().String(), "config.Config")
			}
		}
		return Config{}, fmt.Errorf("config: %s: %w", name, err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Config{}, fmt.Errorf("config: %s: %w", name, ErrMultipleDocuments)
	}
	return doc.config(), nil
}

// Resolve makes relative paths absolute against base (usually the working
// directory) so that components need not care where the process started.
func (c *Config) Resolve(base string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(base, *p)
		}
	}
	abs(&c.DataDir)
	abs(&c.Store.Path)
	abs(&c.Monitor.SQLitePath)
	abs(&c.Security.KeyDir)
	abs(&c.Paths.Partners)
	abs(&c.Paths.Routes)
	abs(&c.Paths.Mappings)
	abs(&c.HTTP.TLSCertFile)
	abs(&c.HTTP.TLSKeyFile)
	for _, f := range []*string{&c.Security.Console.TLCP.SignCertFile, &c.Security.Console.TLCP.SignKeyFile,
		&c.Security.Console.TLCP.EncCertFile, &c.Security.Console.TLCP.EncKeyFile, &c.Security.Console.TLCP.ClientCAFile} {
		abs(f)
	}
	for _, k := range c.sectionKeys() {
		p := reflect.New(reflect.TypeOf(c.sections[k].v))
		if r, ok := p.Interface().(PathResolver); ok {
			p.Elem().Set(reflect.ValueOf(c.sections[k].v))
			r.ResolvePaths(base)
			c.setSection(k, p.Elem().Interface())
		}
	}
}
