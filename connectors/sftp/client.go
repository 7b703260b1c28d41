package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/monitor"
)

// Keys are the optional signing and verifying keys of a client.
type Keys struct {
	// Signer signs outbound files (a .sig file is written when set).
	Signer Signer
	// Verifier checks inbound signatures (when a .sig file is present, or
	// always with require_signature).
	Verifier Verifier
}

// Client is the SFTP transport to one partner. It is safe for concurrent
// use; Close releases its connections.
type Client struct {
	partner string
	flow    string
	cfg     Config
	ssh     *ssh.ClientConfig
	deps    connectors.Deps
	keys    Keys
	log     *slog.Logger
	ledger  *Ledger
	cb      *gobreaker.CircuitBreaker[struct{}]

	slots chan struct{} // capacity PoolSize: connections in use or idle
	idle  chan *conn

	mu       sync.Mutex
	observed map[string]observation // stable-size tracking of the poller
	badDone  map[string]time.Time   // data file -> when its done file first failed to parse
	closed   atomic.Bool
}

type observation struct {
	size  int64
	since time.Time
}

// conn is one SSH connection with its SFTP session.
type conn struct {
	ssh  *ssh.Client
	sftp *sftp.Client
	// last is the unix nanoseconds of the last progress of the current operation.
	last atomic.Int64
}

func (cn *conn) touch() { cn.last.Store(time.Now().UnixNano()) }

// close cuts the network connection first: the SFTP client's Close waits
// for its loops, which only end once the transport is gone.
func (cn *conn) close() {
	_ = cn.ssh.Close()
	_ = cn.sftp.Close()
}

// New returns a client for partner (e.g. "bank.boc"). flow names the
// business flow in monitor events. deps.Store holds the upload and claim
// ledgers; it must have been migrated with Migrate. It does no I/O beyond
// reading the pinned host keys and the private key.
func New(partner, flow string, cfg Config, deps connectors.Deps, keys Keys) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sftp %s: config: %w", partner, err)
	}
	if deps.Clock == nil {
		deps.Clock = clock.Real{}
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Node == "" {
		cfg.Node, _ = os.Hostname()
	}
	sc, err := sshConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("sftp %s: %w", partner, err)
	}
	c := &Client{
		partner:  partner,
		flow:     flow,
		cfg:      cfg,
		ssh:      sc,
		deps:     deps,
		keys:     keys,
		log:      deps.Logger.With("partner", partner),
		slots:    make(chan struct{}, cfg.PoolSize),
		idle:     make(chan *conn, cfg.PoolSize),
		observed: map[string]observation{},
		badDone:  map[string]time.Time{},
	}
	if deps.Store != nil {
		c.ledger = &Ledger{db: deps.Store}
	}
	c.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        partner,
		MaxRequests: 1,
		Timeout:     cfg.BreakerOpenFor,
		ReadyToTrip: func(n gobreaker.Counts) bool { return n.ConsecutiveFailures >= uint32(cfg.BreakerFailures) },
		IsSuccessful: func(err error) bool {
			return err == nil || !transportFault(err)
		},
		IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
		OnStateChange: func(name string, from, to gobreaker.State) {
			c.log.Warn("sftp circuit breaker", "from", from.String(), "to", to.String())
			st := monitor.Warning
			if to == gobreaker.StateClosed {
				st = monitor.OK
			}
			c.emit(monitor.Event{Type: monitor.Failed, Status: st, ErrorClass: "breaker", ErrorCode: "breaker_" + to.String()})
		},
	})
	return c, nil
}

// Partner returns the partner id.
func (c *Client) Partner() string { return c.partner }

// Config returns the client's configuration.
func (c *Client) Config() Config { return c.cfg }

func sshConfig(cfg Config) (*ssh.ClientConfig, error) {
	var auth []ssh.AuthMethod
	if cfg.PrivateKeyFile != "" {
		pem, err := os.ReadFile(cfg.PrivateKeyFile)
		if err != nil {
			return nil, fmt.Errorf("private key: %w (%s)", err, keyHelp(cfg.PrivateKeyFile))
		}
		signer, err := ssh.ParsePrivateKey(pem)
		if err != nil {
			return nil, fmt.Errorf("private key %s: %w (an unencrypted OpenSSH or PEM key is needed; %s)", cfg.PrivateKeyFile, err, keyHelp(cfg.PrivateKeyFile))
		}
		auth = append(auth, ssh.PublicKeys(signer))
	}
	if cfg.Password != "" {
		auth = append(auth, ssh.Password(cfg.Password))
	}
	var known ssh.HostKeyCallback
	if cfg.KnownHostsFile != "" {
		cb, err := knownhosts.New(cfg.KnownHostsFile)
		if err != nil {
			return nil, fmt.Errorf("known_hosts: %w (add the partner's host key: ssh-keyscan -p PORT HOST >> %s, and compare its fingerprint, ssh-keygen -lf %s, with the one the partner gives you; or set host_key_fingerprint; see docs/sftp.md)",
				err, cfg.KnownHostsFile, cfg.KnownHostsFile)
		}
		known = cb
	}
	pin := cfg.HostKeyFingerprint
	check := func(host string, remote net.Addr, key ssh.PublicKey) error {
		if pin != "" && ssh.FingerprintSHA256(key) != pin {
			return fmt.Errorf("%w: %s presented %s", ErrHostKey, host, ssh.FingerprintSHA256(key))
		}
		if known != nil {
			if err := known(host, remote, key); err != nil {
				return fmt.Errorf("%w: %v", ErrHostKey, err)
			}
		}
		return nil
	}
	return &ssh.ClientConfig{User: cfg.User, Auth: auth, HostKeyCallback: check, Timeout: cfg.DialTimeout}, nil
}

// dial opens one connection within DialTimeout.
func (c *Client) dial(ctx context.Context) (*conn, error) {
	d := net.Dialer{Timeout: c.cfg.DialTimeout}
	nc, err := d.DialContext(ctx, "tcp", c.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", c.cfg.Addr, err)
	}
	_ = nc.SetDeadline(time.Now().Add(c.cfg.DialTimeout))
	sconn, chans, reqs, err := ssh.NewClientConn(nc, c.cfg.Addr, c.ssh)
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("ssh handshake %s: %w", c.cfg.Addr, err)
	}
	sshc := ssh.NewClient(sconn, chans, reqs)
	sc, err := sftp.NewClient(sshc, sftp.UseConcurrentWrites(true), sftp.UseConcurrentReads(true))
	if err != nil {
		_ = sshc.Close()
		return nil, fmt.Errorf("sftp session %s: %w", c.cfg.Addr, err)
	}
	_ = nc.SetDeadline(time.Time{})
	return &conn{ssh: sshc, sftp: sc}, nil
}

// get takes an idle connection or dials a new one.
func (c *Client) get(ctx context.Context) (*conn, error) {
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case cn := <-c.idle:
		return cn, nil
	default:
	}
	// The handshake runs under the watchdog too: a server that accepts
	// TCP and then says nothing is a stall like any other.
	type res struct {
		cn  *conn
		err error
	}
	ch := make(chan res, 1)
	dctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	go func() {
		cn, err := c.dial(dctx)
		ch <- res{cn, err}
	}()
	r := <-ch
	if r.err != nil {
		<-c.slots
		return nil, r.err
	}
	return r.cn, nil
}

func (c *Client) put(cn *conn) {
	if c.closed.Load() {
		cn.close()
	} else {
		c.idle <- cn
	}
	<-c.slots
}

func (c *Client) discard(cn *conn) {
	cn.close()
	<-c.slots
}

// Close closes the idle connections; operations in flight finish or fail.
func (c *Client) Close(ctx context.Context) error {
	c.closed.Store(true)
	for {
		select {
		case cn := <-c.idle:
			cn.close()
		default:
			return nil
		}
	}
}

// do runs fn on a pooled connection through the circuit breaker, under the
// operation watchdog: when fn makes no progress (cn.touch) for OpTimeout,
// or ctx ends, the connection is closed, which makes fn return.
func (c *Client) do(ctx context.Context, fn func(cn *conn) error) error {
	if c.closed.Load() {
		return ErrClosed
	}
	_, err := c.cb.Execute(func() (struct{}, error) {
		return struct{}{}, c.run(ctx, fn)
	})
	return err
}

func (c *Client) run(ctx context.Context, fn func(cn *conn) error) error {
	cn, err := c.get(ctx)
	if err != nil {
		return err
	}
	cn.touch()
	done := make(chan error, 1)
	go func() { done <- fn(cn) }()
	step := c.cfg.OpTimeout / 4
	if step > time.Second {
		step = time.Second
	}
	tick := time.NewTicker(step)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil && transportFault(err) {
				c.discard(cn)
			} else {
				c.put(cn)
			}
			return err
		case <-ctx.Done():
			c.discard(cn)
			<-done
			return ctx.Err()
		case <-tick.C:
			if time.Since(time.Unix(0, cn.last.Load())) > c.cfg.OpTimeout {
				c.discard(cn)
				<-done
				return fmt.Errorf("%w (%s without progress)", ErrTimeout, c.cfg.OpTimeout)
			}
		}
	}
}

// transportFault tells whether err means the connection or server is at
// fault (counts for the breaker, closes the connection, worth a retry), as
// opposed to an answer of a healthy server or a content problem.
func transportFault(err error) bool {
	if err == nil {
		return false
	}
	var se *sftp.StatusError
	switch {
	case errors.Is(err, ErrExists), errors.Is(err, ErrDigest), errors.Is(err, ErrSignature),
		errors.Is(err, ErrDoneFile), errors.Is(err, ErrClaimed), errors.Is(err, ErrHostKey),
		errors.Is(err, fs.ErrNotExist), errors.Is(err, context.Canceled), errors.As(err, &se):
		return false
	}
	return true
}

// retry runs op with exponential backoff and jitter while it fails with a
// transport fault, emitting a retried event before each new attempt.
func (c *Client) retry(ctx context.Context, what string, ev monitor.Event, op func(attempt int) error) error {
	backoff := c.cfg.RetryBackoff
	for attempt := 1; ; attempt++ {
		err := op(attempt)
		if err == nil || !transportFault(err) || errors.Is(err, gobreaker.ErrOpenState) || attempt > c.cfg.Retries || ctx.Err() != nil {
			return err
		}
		ev.Type, ev.Status, ev.Attempt = monitor.Retried, monitor.Warning, attempt+1
		ev.ErrorClass, ev.ErrorMessage = "transport", err.Error()
		c.emit(ev)
		c.log.Warn("sftp retry", "op", what, "attempt", attempt+1, "err", err)
		wait := backoff/2 + time.Duration(rand.Int64N(int64(backoff)+1))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		backoff *= 2
	}
}

// emit fills the common fields of an event and hands it to the monitor.
func (c *Client) emit(ev monitor.Event) {
	if c.deps.Events == nil {
		return
	}
	ev.Time = c.deps.Clock.Now()
	ev.Partner = c.partner
	if ev.Flow == "" {
		ev.Flow = c.flow
	}
	ev.Channel = "sftp"
	ev.Component = "connectors/sftp"
	ev.Node = c.cfg.Node
	c.deps.Events.Emit(ev)
}

// progressReader touches the connection on every read.
type progressReader struct {
	r    io.Reader
	cn   *conn
	size int64
}

// Size lets pkg/sftp choose concurrent writes for a reader of known size.
func (p progressReader) Size() int64 { return p.size }

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.cn.touch()
	return n, err
}

// progressWriter touches the connection on every write.
type progressWriter struct {
	w  io.Writer
	cn *conn
}

func (p progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.cn.touch()
	return n, err
}

// keyHelp says how to set up the SSH key the hub logs in with.
func keyHelp(p string) string {
	return fmt.Sprintf("create the hub's key with: ssh-keygen -t ed25519 -N '' -f %s, chmod 600 it, and give %s.pub to the partner to authorise; see docs/sftp.md", p, p)
}
