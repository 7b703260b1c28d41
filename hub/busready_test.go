package hub_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/config"
	"github.com/shanghai-mca/mzhub/hub/hubtest"
)

// cutProxy forwards TCP connections to target until cut, which closes the
// listener side's connections and refuses new ones until restored.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  []net.Conn
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	t.Cleanup(func() { _ = ln.Close(); p.setCut(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.cut {
				p.mu.Unlock()
				_ = c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				p.mu.Unlock()
				_ = c.Close()
				continue
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); _ = up.Close() }()
			go func() { _, _ = io.Copy(c, up); _ = c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	if cut {
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.conns = nil
	}
}

// TestIntegrationReadyzNamesTheBus: with the broker unreachable, /readyz
// answers 503 naming the bus; once it is back, 200 again.
func TestIntegrationReadyzNamesTheBus(t *testing.T) {
	u := os.Getenv("MZHUB_TEST_PULSAR")
	if u == "" {
		t.Skip("MZHUB_TEST_PULSAR not set (deploy/pulsar/start.sh starts a broker)")
	}
	proxy := startCutProxy(t, strings.TrimPrefix(u, "pulsar://"))
	s := hubtest.Start(t, hubtest.Options{Configure: func(c *config.Config) {
		c.Bus.Kind = "pulsar"
		c.Bus.Pulsar.URL = "pulsar://" + proxy.ln.Addr().String()
		c.Bus.Pulsar.Namespace = "test"
		c.Bus.Pulsar.OperationTimeout = 3 * time.Second
		c.Bus.Pulsar.ProducerName = ""
	}})
	readyz := func() (int, []string) {
		resp, err := http.Get(s.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var a struct {
			Failing []string `json:"failing"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&a)
		return resp.StatusCode, a.Failing
	}
	waitReady := func(want int, failing []string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		for {
			code, f := readyz()
			if code == want && slices.Equal(f, failing) {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("readyz: %d %v, want %d %v", code, f, want, failing)
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	waitReady(http.StatusOK, nil)
	proxy.setCut(true)
	waitReady(http.StatusServiceUnavailable, []string{"bus"})
	proxy.setCut(false)
	waitReady(http.StatusOK, nil)
}
