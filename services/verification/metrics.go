package verification

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests  prometheus.Counter
	calls     *prometheus.CounterVec
	outcomes  *prometheus.CounterVec
	household prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounter(prometheus.CounterOpts{Name: "mzhub_verification_requests_total", Help: "Household verification requests stored."}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mzhub_verification_partner_calls_total",
			Help: "Partner calls by partner and kind (ask, lookup)."}, []string{"partner", "kind"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mzhub_verification_call_outcomes_total",
			Help: "Partner call outcomes by partner and outcome (answered, review, rejected, late, failed, retry)."}, []string{"partner", "outcome"}),
		household: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mzhub_verification_household_seconds",
			Help: "Time from a request's submission to its final result.", Buckets: prometheus.ExponentialBuckets(0.05, 2.5, 14)}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.calls, m.outcomes, m.household} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("verification: metrics: %w", err)
			}
		}
	}
	return m, nil
}
