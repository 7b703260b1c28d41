package sample

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/monitor"
)

// Banks are the six disbursement banks.
var Banks = []string{"bank.boc", "bank.bocom", "bank.ceb", "bank.cmb", "bank.spdb", "bank.ccb"}

// Scenario returns a coherent set of events ending at now: one allowance
// batch with its stages (the "returns" stage of CCB stuck and failing), a
// daily death file, job-library status pushes with a dead letter, funeral
// pushes and village-bank answers. The result is deterministic for a seed.
func Scenario(now time.Time, seed uint64) []monitor.Event {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var evs []monitor.Event
	n := 0
	add := func(ev monitor.Event) {
		n++
		ev.ID = fmt.Sprintf("sample-%d-%d", seed, n)
		if ev.Status == "" {
			ev.Status = monitor.OK
		}
		if ev.Component == "" {
			ev.Component = "sample"
		}
		evs = append(evs, ev)
	}
	batch := "allowance-" + now.AddDate(0, 0, -3).Format("2006-01")
	t0 := now.Add(-30 * time.Hour)
	// Intake of death and migration data from the data sea.
	add(monitor.Event{Time: t0, Partner: "datasea", Flow: "allowance", Direction: monitor.Inbound, Channel: "sftp",
		Type: monitor.Fetched, ExchangeID: batch + "/intake/death", BatchID: batch, Stage: "intake", Records: 3120,
		FileName: "DEATH_" + t0.Format("20060102") + ".txt", Bytes: 512000, Duration: 4 * time.Second})
	add(monitor.Event{Time: t0.Add(10 * time.Minute), Partner: "datasea", Flow: "allowance", Direction: monitor.Internal,
		Type: monitor.StageChanged, ExchangeID: batch + "/intake", BatchID: batch, Stage: "intake", Records: 3120})
	add(monitor.Event{Time: t0.Add(time.Hour), Partner: "hub", Flow: "allowance", Direction: monitor.Internal,
		Type: monitor.Validated, ExchangeID: batch + "/list", BatchID: batch, Stage: "validate", Records: 4400000,
		RecordsFailed: 37, ParentIDs: []string{batch + "/intake"}, AmountFen: 4400000 * 15000})
	add(monitor.Event{Time: t0.Add(2 * time.Hour), Partner: "hub", Flow: "allowance", Direction: monitor.Internal,
		Type: monitor.StageChanged, ExchangeID: batch + "/list", BatchID: batch, Stage: "validate", Records: 4399963})
	for i, bank := range Banks {
		file := fmt.Sprintf("%s/%s/send", batch, bank)
		recs := int64(400000 + 100000*i)
		add(monitor.Event{Time: t0.Add(3*time.Hour + time.Duration(i)*time.Minute), Partner: bank, Flow: "allowance",
			Direction: monitor.Outbound, Channel: "sftp", Type: monitor.Uploaded, ExchangeID: file, BatchID: batch,
			Stage: "send", ParentIDs: []string{batch + "/list"}, Records: recs, AmountFen: recs * 15000,
			FileName: fmt.Sprintf("%s_DISB_%s.txt", strings.ToUpper(bank[5:]), now.Format("200601")), Bytes: recs * 120,
			Digest: fmt.Sprintf("%064x", r.Uint64()), Duration: time.Duration(20+r.IntN(40)) * time.Second, Attempt: 1})
		ret := fmt.Sprintf("%s/%s/return", batch, bank)
		if bank == "bank.ccb" {
			// CCB's return is late and its first attempt failed to parse.
			add(monitor.Event{Time: now.Add(-3 * time.Hour), Partner: bank, Flow: "allowance", Direction: monitor.Inbound,
				Channel: "sftp", Type: monitor.Failed, Status: monitor.Error, ExchangeID: ret, BatchID: batch, Stage: "returns",
				ParentIDs: []string{file}, ErrorClass: "format", ErrorCode: "trailer_mismatch",
				ErrorMessage: "trailer count 699998 != details 700000", Attempt: 1})
			continue
		}
		failed := int64(r.IntN(40))
		add(monitor.Event{Time: t0.Add(20*time.Hour + time.Duration(i)*7*time.Minute), Partner: bank, Flow: "allowance",
			Direction: monitor.Inbound, Channel: "sftp", Type: monitor.Downloaded, ExchangeID: ret, BatchID: batch,
			Stage: "returns", ParentIDs: []string{file}, Records: recs, RecordsFailed: failed,
			FileName: fmt.Sprintf("%s_RET_%s.txt", strings.ToUpper(bank[5:]), now.Format("200601")), Bytes: recs * 80,
			Duration: time.Duration(5+r.IntN(20)) * time.Second})
		add(monitor.Event{Time: t0.Add(21*time.Hour + time.Duration(i)*7*time.Minute), Partner: bank, Flow: "allowance",
			Direction: monitor.Internal, Type: monitor.Reconciled, ExchangeID: ret, BatchID: batch, Stage: "reconcile",
			Records: recs - failed, RecordsFailed: failed, AmountFen: (recs - failed) * 15000})
	}
	add(monitor.Event{Time: t0.Add(3*time.Hour + 10*time.Minute), Partner: "hub", Flow: "allowance", Direction: monitor.Internal,
		Type: monitor.StageChanged, ExchangeID: batch + "/send", BatchID: batch, Stage: "send"})
	// Daily death file from the data sea, every day at about 05:30.
	for d := 6; d >= 0; d-- {
		at := now.AddDate(0, 0, -d).Add(-time.Duration(r.IntN(60)) * time.Minute)
		add(monitor.Event{Time: at, Partner: "datasea", Flow: "death", Direction: monitor.Inbound, Channel: "sftp",
			Type: monitor.Fetched, ExchangeID: "death/" + at.Format("20060102"), Records: int64(250 + r.IntN(100)),
			FileName: "DEATH_" + at.Format("20060102") + ".txt", Bytes: 40000, Duration: time.Duration(800+r.IntN(900)) * time.Millisecond})
	}
	// Job-library status pushes over the last 24 hours; a few fail, one dead-letters.
	for i := range 240 {
		at := now.Add(-time.Duration(i) * 6 * time.Minute)
		id := fmt.Sprintf("joblib/status/%d", i)
		ev := monitor.Event{Time: at, Partner: "joblib", Flow: "status-push", Direction: monitor.Outbound, Channel: "http",
			Type: monitor.Sent, ExchangeID: id, BusinessKey: fmt.Sprintf("tok:%08x", r.Uint32()),
			PartnerRef: fmt.Sprintf("YWTB%010d", 1000+i), Duration: time.Duration(80+r.IntN(400)) * time.Millisecond, Attempt: 1}
		if i%37 == 5 {
			ev.Type, ev.Status, ev.ErrorClass, ev.ErrorCode, ev.ErrorMessage = monitor.Retried, monitor.Warning, "http_503", "503", "service unavailable"
		}
		add(ev)
	}
	add(monitor.Event{Time: now.Add(-50 * time.Minute), Partner: "joblib", Flow: "status-push", Direction: monitor.Outbound,
		Channel: "http", Type: monitor.DeadLettered, Status: monitor.Error, ExchangeID: "joblib/status/dl-1",
		ErrorClass: "http_400", ErrorCode: "400", ErrorMessage: "证件号码 310***********1234 格式错误", Attempt: 5})
	// Funeral homes push reservations; village banks answer verification requests.
	for h := 1; h <= 3; h++ {
		for i := range 30 {
			at := now.Add(-time.Duration(i*23+h) * time.Minute)
			add(monitor.Event{Time: at, Partner: fmt.Sprintf("funeral.fh%02d", h), Flow: "resource-sync", Direction: monitor.Inbound,
				Channel: "http", Type: monitor.Received, ExchangeID: fmt.Sprintf("fh%02d/%d", h, i),
				Duration: time.Duration(20+r.IntN(60)) * time.Millisecond, Bytes: int64(800 + r.IntN(400))})
		}
	}
	for v := 1; v <= 2; v++ {
		for i := range 20 {
			at := now.Add(-time.Duration(i*30+v) * time.Minute)
			ev := monitor.Event{Time: at, Partner: fmt.Sprintf("villagebank.%02d", v), Flow: "verification", Direction: monitor.Inbound,
				Channel: "http", Type: monitor.Received, ExchangeID: fmt.Sprintf("vb%02d/%d", v, i),
				Duration: time.Duration(1+r.IntN(30)) * time.Second, Records: 1}
			if v == 2 && i%4 == 0 {
				ev.Type, ev.Status, ev.ErrorClass, ev.ErrorMessage = monitor.Validated, monitor.Error, "format", "deposit amount missing"
				ev.RecordsFailed = 1
			}
			add(ev)
		}
	}
	return evs
}

// Bulk returns n synthetic events spread evenly over [from, to), for load
// tests: 100 partners × 8 flows, 2 % errors, lineage to a parent file every
// 100 events.
func Bulk(from, to time.Time, n, offset int, seed uint64) []monitor.Event {
	r := rand.New(rand.NewPCG(seed, 7))
	span := to.Sub(from)
	flows := []string{"allowance", "deduction", "verification", "status-push", "death", "migration", "burial-push", "resource-sync"}
	types := []monitor.EventType{monitor.Received, monitor.Sent, monitor.Uploaded, monitor.Downloaded, monitor.Transformed, monitor.Validated}
	evs := make([]monitor.Event, n)
	for i := range evs {
		k := offset + i
		ev := monitor.Event{
			Time:       from.Add(time.Duration(float64(span) * float64(i) / float64(n))),
			ID:         fmt.Sprintf("bulk-%d-%d", seed, k),
			Partner:    fmt.Sprintf("p%03d", k%100),
			Flow:       flows[k%len(flows)],
			Direction:  monitor.Inbound,
			Channel:    "http",
			Type:       types[k%len(types)],
			Status:     monitor.OK,
			ExchangeID: fmt.Sprintf("x%d", k),
			BatchID:    fmt.Sprintf("b%d", k/10000),
			Stage:      []string{"intake", "validate", "send", "returns"}[(k/2500)%4],
			Records:    int64(r.IntN(1000)),
			Bytes:      int64(r.IntN(100000)),
			Duration:   time.Duration(r.IntN(2000)) * time.Millisecond,
			Attempt:    1,
			Component:  "bulk",
			Node:       "n1",
		}
		if k%100 != 0 {
			ev.ParentIDs = []string{fmt.Sprintf("x%d", k-k%100)}
		}
		if r.IntN(50) == 0 {
			ev.Status, ev.Type, ev.ErrorClass, ev.ErrorMessage = monitor.Error, monitor.Failed, "timeout", "deadline exceeded"
		}
		evs[i] = ev
	}
	return evs
}
