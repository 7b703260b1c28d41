// Command loadgen measures the partner-facing path of a running hub the way a
// partner reaches it: every request signed with HMAC-SM3 (security/sign), N
// connections, a bounded duration. It carries its own partner sink (with a
// status endpoint, counting what arrives) and a bare Go forwarder (HTTP in,
// the same JSON mapping, HTTP out) that serves as the ceiling of the
// machine in the same run.
//
//	loadgen -setup DIR                  write DIR/mzhub.yaml, a bench route and a partner key
//	mzhub serve --config DIR/mzhub.yaml  (another terminal)
//	loadgen -target http://127.0.0.1:18470/routes/bench -conns 4,50,100,200 -duration 10s -pid PID
//
// For each connection count it runs the ceiling (unless -ceiling=false) and
// then the target, and prints req/s, p50/p99, errors by status, and counts
// at the sink: accepted (2xx), delivered, lost (accepted, never delivered
// within -settle), duplicates (delivered more than once) and extra
// (delivered but never answered 2xx). Traffic goes to loopback only; every
// run stops by itself.
package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/security/sign"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type options struct {
	target, keyID, secretHex, sinkAddr, fwdAddr, setup, hubListen string
	conns                                                         []int
	duration, settle, timeout                                     time.Duration
	ceiling                                                       bool
	pid                                                           int
}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	var o options
	var conns string
	fs.StringVar(&o.setup, "setup", "", "write a hub configuration, a bench route and a partner key into this directory, then exit")
	fs.StringVar(&o.hubListen, "hub-listen", "127.0.0.1:18470", "the hub's listen address written by -setup")
	fs.StringVar(&o.target, "target", "", "the hub's route URL (http://127.0.0.1:18470/routes/bench); empty: ceiling only")
	fs.StringVar(&o.keyID, "key-id", "bench", "partner key id")
	fs.StringVar(&o.secretHex, "secret", benchSecret, "partner secret, hex")
	fs.StringVar(&o.sinkAddr, "sink", "127.0.0.1:18471", "listen address of the partner sink")
	fs.StringVar(&o.fwdAddr, "forwarder", "127.0.0.1:0", "listen address of the bare forwarder (the ceiling; port 0: any free port)")
	fs.StringVar(&conns, "conns", "4,50,100,200", "connection counts, comma-separated")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long each run sends")
	fs.DurationVar(&o.settle, "settle", 20*time.Second, "how long to wait for accepted messages to reach the sink")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "client timeout per request")
	fs.BoolVar(&o.ceiling, "ceiling", true, "also run the bare forwarder at each connection count")
	fs.IntVar(&o.pid, "pid", 0, "the hub's process id: its resident memory (VmRSS, VmHWM) is reported")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.setup != "" {
		return writeSetup(o.setup, o.hubListen, o.sinkAddr, o.keyID, o.secretHex, out)
	}
	for _, s := range strings.Split(conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("-conns: %q is not a positive number", s)
		}
		o.conns = append(o.conns, n)
	}
	if o.duration <= 0 || o.duration > 10*time.Minute {
		return errors.New("-duration: want more than 0 and at most 10m")
	}
	for _, a := range []string{o.target, "http://" + o.sinkAddr, "http://" + o.fwdAddr} {
		if a != "" && a != "http://" && !loopback(a) {
			return fmt.Errorf("%s: only loopback addresses are allowed", a)
		}
	}
	secret, err := hex.DecodeString(o.secretHex)
	if err != nil {
		return fmt.Errorf("-secret: %w", err)
	}
	sk := newSink()
	stopSink, sinkAddr, err := serve(o.sinkAddr, sk)
	if err != nil {
		return err
	}
	o.sinkAddr = sinkAddr
	defer stopSink()
	fwd := newForwarder("http://" + o.sinkAddr + "/in")
	stopFwd, fwdAddr, err := serve(o.fwdAddr, fwd)
	if err != nil {
		return err
	}
	o.fwdAddr = fwdAddr
	defer stopFwd()
	fmt.Fprintf(out, "machine: %s\n", machine())
	run := 0
	for _, n := range o.conns {
		if o.ceiling {
			run++
			r := load(o, "http://"+o.fwdAddr+"/in", fmt.Sprintf("c%d-%d-", run, time.Now().UnixNano()), n, secret, sk, 0)
			r.print(out, "ceiling (bare forwarder)")
		}
		if o.target != "" {
			run++
			r := load(o, o.target, fmt.Sprintf("h%d-%d-", run, time.Now().UnixNano()), n, secret, sk, o.pid)
			r.print(out, "hub "+o.target)
		}
	}
	return nil
}

// benchSecret is the bench partner's secret written by -setup (a test key,
// never a real partner's).
const benchSecret = "62656e63682d7061727472657220736563726574206b6579203031"

func loopback(u string) bool {
	rest := strings.TrimPrefix(strings.TrimPrefix(u, "http://"), "https://")
	host, _, err := net.SplitHostPort(strings.SplitN(rest, "/", 2)[0])
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func serve(addr string, h http.Handler) (func(), string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("listen %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, ln.Addr().String(), nil
}

// result is one run's figures.
type result struct {
	conns                               int
	sent, ok                            int
	byStatus                            map[string]int
	elapsed                             time.Duration
	p50, p99, max                       time.Duration
	delivered, lost, duplicates, extra  int
	loadBefore, loadAfter, rss, rssPeak string
	// rssAnon and rssFile split rss: the process's own memory, and the
	// executable's (and other files') pages mapped from the page cache.
	rssAnon, rssFile string
	// hubCPU and selfCPU are the CPU time (user + system) the hub and the
	// load generator itself used while sending (not while settling).
	hubCPU, selfCPU time.Duration
}

func (r result) print(w io.Writer, what string) {
	fmt.Fprintf(w, "%-40s conns=%-4d req/s=%-8.0f p50=%-8s p99=%-8s max=%-8s sent=%d 2xx=%d errors=%v delivered=%d lost=%d duplicates=%d extra=%d load_before=%q load_after=%q",
		what, r.conns, float64(r.ok)/r.elapsed.Seconds(), r.p50.Round(100*time.Microsecond), r.p99.Round(100*time.Microsecond), r.max.Round(time.Millisecond),
		r.sent, r.ok, r.byStatus, r.delivered, r.lost, r.duplicates, r.extra, r.loadBefore, r.loadAfter)
	if r.rss != "" {
		fmt.Fprintf(w, " rss=%s rss_peak=%s rss_anon=%s rss_file=%s", r.rss, r.rssPeak, r.rssAnon, r.rssFile)
	}
	if r.ok > 0 {
		if r.hubCPU > 0 {
			fmt.Fprintf(w, " hub_cpu_per_req=%.0fµs", float64(r.hubCPU.Microseconds())/float64(r.ok))
		}
		fmt.Fprintf(w, " loadgen_cpu_per_req=%.0fµs", float64(r.selfCPU.Microseconds())/float64(r.ok))
	}
	fmt.Fprintln(w)
}

// load sends signed requests on n connections for o.duration, then waits
// for the sink to receive what was accepted.
func load(o options, url, prefix string, n int, secret []byte, sk *sink, pid int) result {
	res := result{conns: n, byStatus: map[string]int{}, loadBefore: loadavg()}
	tr := &http.Transport{MaxIdleConns: n, MaxIdleConnsPerHost: n, MaxConnsPerHost: n, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: o.timeout}
	var mu sync.Mutex
	var lat []time.Duration
	accepted := map[string]bool{}
	var seq atomic.Int64
	hub0, self0 := procCPU(pid), clock.ProcessCPU()
	deadline := time.Now().Add(o.duration)
	start := time.Now()
	var wg sync.WaitGroup
	for c := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var my []time.Duration
			var myOK []string
			myStatus := map[string]int{}
			for time.Now().Before(deadline) {
				i := seq.Add(1)
				id := prefix + strconv.FormatInt(i, 10)
				body := fmt.Sprintf(`{"id":%q,"person":"P%06d","amount_yuan":%d.%02d,"client":%d}`, id, i%100000, 100+i%900, i%100, c)
				req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if err := sign.Sign(req, o.keyID, secret); err != nil {
					myStatus["sign"]++
					continue
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				d := time.Since(t0)
				my = append(my, d)
				if err != nil {
					k := "client_error"
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						k = "client_timeout"
					}
					myStatus[k]++
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					myOK = append(myOK, id)
				} else {
					myStatus[strconv.Itoa(resp.StatusCode)]++
				}
			}
			mu.Lock()
			lat = append(lat, my...)
			for _, id := range myOK {
				accepted[id] = true
			}
			for k, v := range myStatus {
				res.byStatus[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.selfCPU = clock.ProcessCPU() - self0
	if pid > 0 {
		res.hubCPU = procCPU(pid) - hub0
	}
	res.sent, res.ok = len(lat), len(accepted)
	if pid > 0 {
		res.rss, res.rssPeak, res.rssAnon, res.rssFile = procMem(pid)
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		res.p50 = lat[len(lat)*50/100]
		res.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
		res.max = lat[len(lat)-1]
	}
	// Wait until every accepted message arrived (or settle passes).
	until := time.Now().Add(o.settle)
	for {
		missing := 0
		for id := range accepted {
			if sk.count(id) == 0 {
				missing++
			}
		}
		if missing == 0 || time.Now().After(until) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for id, c := range sk.withPrefix(prefix) {
		res.delivered++
		if c > 1 {
			res.duplicates += c - 1
		}
		if !accepted[id] {
			res.extra++
		}
	}
	for id := range accepted {
		if sk.count(id) == 0 {
			res.lost++
		}
	}
	res.loadAfter = loadavg()
	return res
}

// sink is the partner: it counts deliveries by message id and answers
// GET /status/{key} with 200 when it has the message, 404 when not.
type sink struct {
	mu   sync.Mutex
	got  map[string]int
	keys map[string]bool
}

func newSink() *sink { return &sink{got: map[string]int{}, keys: map[string]bool{}} }

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/status/") {
		s.mu.Lock()
		ok := s.keys[strings.TrimPrefix(r.URL.Path, "/status/")]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(http.StatusOK)
		return
	}
	var m struct {
		ID string `json:"id"`
	}
	b, err := io.ReadAll(r.Body)
	if err != nil || json.Unmarshal(b, &m) != nil || m.ID == "" {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	if k := r.Header.Get("Idempotency-Key"); k != "" && s.keys[k] {
		// The partner ignores a repeated idempotency key; it still counts
		// the arrival, so a resend shows as a duplicate.
		s.got[m.ID]++
		s.mu.Unlock()
		w.WriteHeader(http.StatusOK)
		return
	} else if k != "" {
		s.keys[k] = true
	}
	s.got[m.ID]++
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (s *sink) count(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[id]
}

func (s *sink) withPrefix(p string) map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.got {
		if strings.HasPrefix(k, p) {
			out[k] = v
		}
	}
	return out
}

// forwarder is the ceiling: a bare Go HTTP-in → map → HTTP-out program
// (no signature check, no bus, no ledger) doing the bench route's mapping.
type forwarder struct {
	out    string
	client *http.Client
}

func newForwarder(out string) *forwarder {
	tr := &http.Transport{MaxIdleConns: 512, MaxIdleConnsPerHost: 512}
	return &forwarder{out: out, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func (f *forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ID         string  `json:"id"`
		Person     string  `json:"person"`
		AmountYuan float64 `json:"amount_yuan"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	b, _ := json.Marshal(map[string]any{"id": in.ID, "person": in.Person, "amount_fen": int64(in.AmountYuan*100 + 0.5)})
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, f.out, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", in.ID)
	resp, err := f.client.Do(req)
	if err != nil {
		http.Error(w, "sink unreachable", http.StatusBadGateway)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		http.Error(w, "sink refused", http.StatusBadGateway)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// procCPU is the user and system CPU time of process pid from
// /proc/PID/stat (0 when unreadable). The fields count in USER_HZ ticks,
// 100 a second on Linux.
func procCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count after its ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(ut+st) * (time.Second / 100)
}

func procMem(pid int) (rss, peak, anon, file string) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "?", "?", "?", "?"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "RssAnon:"); ok {
			anon = strings.Join(strings.Fields(v), "")
		}
		if v, ok := strings.CutPrefix(l, "RssFile:"); ok {
			file = strings.Join(strings.Fields(v), "")
		}
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			rss = strings.Join(strings.Fields(v), "")
		}
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			peak = strings.Join(strings.Fields(v), "")
		}
	}
	return rss, peak, anon, file
}

func machine() string {
	model := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("cpu=%q load=%q", model, loadavg())
}

// writeSetup writes a hub configuration (embedded profile, data in dir),
// the bench route (HTTP in, map, HTTP out to the sink with its status
// endpoint) and the bench partner's key.
func writeSetup(dir, listen, sinkAddr, keyID, secretHex string, out io.Writer) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for _, d := range []string{"routes", "keys/partner", "partners/funeral", "mappings"} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o750); err != nil {
			return err
		}
	}
	cfg := fmt.Sprintf(`profile: embedded
data_dir: %[1]s/data
log:
  level: warn
http:
  listen: %[2]s
store:
  driver: sqlite
  path: %[1]s/data/mzhub.db
bus:
  kind: local
monitor:
  store: sqlite
  sqlite_path: %[1]s/data/monitor.db
security:
  key_provider: file
  key_dir: %[1]s/keys
  generate_keys: true
  partner_api:
    partner_rate: 100000
    partner_burst: 100000
    ip_rate: 100000
    ip_burst: 100000
    partners:
      - id: bench.partner
        key_ids: [%[3]s]
        allow_cidrs: [127.0.0.1/32]
paths:
  partners: %[1]s/partners
  routes: %[1]s/routes
  mappings: %[1]s/mappings
`, abs, listen, keyID)
	route := fmt.Sprintf(`# The load generator's bench route: HTTP in (signed partner calls through
# the partner guard), map, HTTP out to the load generator's sink.
id: bench
partner: bench.partner
flow: bench
from:
  kind: http
idempotency_key: body.id
concurrency: 64
steps:
  - map:
      fields:
        id: body.id
        person: body.person
        amount_fen: int(body.amount_yuan * 100 + 0.5)
to:
  - name: sink
    kind: http
    config:
      url: http://%[1]s/in
      status_url: http://%[1]s/status/{key}
      timeout: 5s
      max_conns: 64
`, sinkAddr)
	files := map[string]string{
		"mzhub.yaml":                     cfg,
		"routes/bench.yaml":              route,
		"keys/partner/" + keyID + ".key": secretHex + "\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(abs, name), []byte(body), 0o600); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "wrote %s\nstart the hub:  mzhub serve --config %s/mzhub.yaml\n", abs, abs)
	return nil
}
