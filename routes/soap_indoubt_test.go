package routes_test

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shanghai-mca/mzhub/bus"
	"github.com/shanghai-mca/mzhub/connectors"
	"github.com/shanghai-mca/mzhub/connectors/soap"
	"github.com/shanghai-mca/mzhub/monitor/monitortest"
	"github.com/shanghai-mca/mzhub/routes"
	"github.com/shanghai-mca/mzhub/routes/routetest"
	"github.com/shanghai-mca/mzhub/store/storetest"
)

// soapPartner is a non-idempotent WebService: it counts every Pay per key
// on receipt, holds the first Pay of each key until the client gives up
// (the partner has it, the hub does not know), and answers the Status
// operation: the receipt, or the fault UnknownKey.
type soapPartner struct {
	mu      sync.Mutex
	counts  map[string]int
	changed chan struct{}
}

func (p *soapPartner) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req, err := soap.ReadRequest(r)
	if err != nil {
		soap.WriteFault(w, soap.V11, soap.Fault{Code: "Client", Reason: err.Error()})
		return
	}
	var q struct {
		Key string `xml:"Key"`
	}
	_ = xml.Unmarshal(req.Body, &q)
	p.mu.Lock()
	switch req.Operation {
	case "Pay":
		p.counts[q.Key]++
		first := p.counts[q.Key] == 1
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
		if first {
			<-r.Context().Done()
			return
		}
		soap.WriteBody(w, soap.V11, []byte(`<PayResult/>`))
	case "Status":
		n := p.counts[q.Key]
		p.mu.Unlock()
		if n == 0 {
			soap.WriteFault(w, soap.V11, soap.Fault{Code: "Client", Reason: "UnknownKey"})
			return
		}
		soap.WriteBody(w, soap.V11, []byte(`<StatusResult>paid</StatusResult>`))
	default:
		p.mu.Unlock()
		soap.WriteFault(w, soap.V11, soap.Fault{Code: "Client", Reason: "unknown operation"})
	}
}

// TestSOAPSinkSettlesByStatus: every Pay outlasts the soap sink's timeout
// at a partner that keeps it; each delivery is in doubt and settled by the
// partner's Status operation, never sent twice.
func TestSOAPSinkSettlesByStatus(t *testing.T) {
	const n = 10
	p := &soapPartner{counts: map[string]int{}, changed: make(chan struct{})}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	route := fmt.Sprintf(`id: soap-pay
partner: test.fund
flow: disbursement
from:
  kind: bus
  config: {topic: in}
idempotency_key: body
concurrency: 4
to:
  - name: fund
    kind: soap
    config:
      url: %s/ws
      action: urn:pay#Pay
      template: '<Pay><Key>{{.Key}}</Key></Pay>'
      timeout: 300ms
      breaker_failures: 1000
      status_action: urn:pay#Status
      status_template: '<Status><Key>{{.Key}}</Key></Status>'
      not_found_faults: [UnknownKey]
errors:
  max_attempts: 10
  backoff: 10ms
  max_backoff: 100ms
`, srv.URL)
	if err := os.WriteFile(filepath.Join(dir, "pay.yaml"), []byte(route), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := connectors.NewRegistry()
	if err := reg.Register(soap.Spec()); err != nil {
		t.Fatal(err)
	}
	b := routetest.NewBus()
	run := &engineRun{events: &monitortest.Recorder{}, metrics: prometheus.NewRegistry(), done: make(chan error, 1)}
	eng, err := routes.NewEngine(routes.EngineConfig{ReloadInterval: -1, DrainTimeout: 5 * time.Second}, routes.Deps{
		Bus: b, Store: storetest.Open(t), Connectors: reg, Events: run.events, Metrics: run.metrics, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Load(dir); err != nil {
		t.Fatal(err)
	}
	run.eng = eng
	ctx, cancel := context.WithCancel(context.Background())
	run.cancel = cancel
	go func() { run.done <- eng.Run(ctx) }()
	t.Cleanup(func() { run.stop(t) })
	for i := range n {
		if err := b.Publish(context.Background(), "in", bus.Message{Body: []byte(fmt.Sprintf("pay-%d", i))}); err != nil {
			t.Fatal(err)
		}
	}
	late := time.After(time.Minute)
	for run.inDoubt("delivered") < n {
		select {
		case <-late:
			t.Fatalf("%v of %d deliveries settled by status within a minute", run.inDoubt("delivered"), n)
		case <-time.After(20 * time.Millisecond): // poll the metric with the deadline above
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.counts) != n {
		t.Errorf("partner has %d keys, want %d", len(p.counts), n)
	}
	for k, c := range p.counts {
		if c != 1 {
			t.Errorf("%s paid %d times", k, c)
		}
	}
}
