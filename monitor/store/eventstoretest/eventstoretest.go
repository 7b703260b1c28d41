package eventstoretest

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/monitor"
)

// Opener returns a fresh, empty store for one test; the suite closes it.
type Opener func(t *testing.T) monitor.Store

// Base is the time the suite's events start at (2026-11-05 08:00 Shanghai).
var Base = time.Date(2026, 11, 5, 0, 0, 0, 0, time.UTC)

// Run runs the whole suite against stores made by open.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s monitor.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"SearchFilters", testSearchFilters},
		{"SearchKeyWithLimit", testSearchKeyWithLimit},
		{"Lineage", testLineage},
		{"Aggregate", testAggregate},
		{"CoarseMatchesRaw", testCoarseMatchesRaw},
		{"LastSeen", testLastSeen},
		{"Batches", testBatches},
		{"FailuresAndDeadLetters", testFailures},
		{"Series", testSeries},
		{"Empty", testEmpty},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, s)
		})
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return c
}

func appendAll(t *testing.T, s monitor.Store, evs ...monitor.Event) {
	t.Helper()
	for i := range evs {
		if evs[i].ID == "" {
			evs[i].ID = fmt.Sprintf("ev-%s-%d-%d", evs[i].ExchangeID, evs[i].Time.UnixMilli(), i)
		}
		if evs[i].Status == "" {
			evs[i].Status = monitor.OK
		}
	}
	if err := s.Append(ctx(t), evs); err != nil {
		t.Fatalf("Append: %v", err)
	}
}

func at(min int) time.Time { return Base.Add(time.Duration(min) * time.Minute) }

func testRoundTrip(t *testing.T, s monitor.Store) {
	want := monitor.Event{
		Time: Base.Add(1234 * time.Millisecond), ID: "e1", Partner: "bank.boc", Flow: "disbursement",
		Direction: monitor.Outbound, Channel: "sftp", Type: monitor.Uploaded, Status: monitor.OK,
		ExchangeID: "file-1", ParentIDs: []string{"batch-1", "list-1"}, BatchID: "2026-11", Stage: "send",
		BusinessKey: "tok:ab12", PartnerRef: "BOC-REF-9", FileName: "BOC_20261105.txt", Digest: "aa55",
		Bytes: 123456, Records: 1000, RecordsFailed: 3, AmountFen: 98765432, Duration: 1500 * time.Millisecond,
		Attempt: 2, ErrorClass: "", ErrorCode: "", ErrorMessage: "", Component: "connector.bank", Node: "n1",
		Attrs: map[string]string{"district": "310101", "bank": "中国银行"},
	}
	appendAll(t, s, want)
	got, err := s.Search(ctx(t), monitor.Filter{ExchangeIDs: []string{"file-1"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 {
		t.Fatalf("got %d events, want 1", len(got))
	}
	g := got[0]
	if !g.Time.Equal(want.Time) {
		t.Errorf("time %v, want %v", g.Time, want.Time)
	}
	g.Time = want.Time
	if !reflect.DeepEqual(g, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", g, want)
	}
}

func testSearchFilters(t *testing.T, s monitor.Store) {
	evs := []monitor.Event{
		{Time: at(0), Partner: "bank.boc", Flow: "disbursement", Type: monitor.Uploaded, ExchangeID: "x1", BatchID: "b1", FileName: "f1", PartnerRef: "r1", BusinessKey: "k1"},
		{Time: at(1), Partner: "bank.ccb", Flow: "disbursement", Type: monitor.Failed, Status: monitor.Error, ExchangeID: "x2", BatchID: "b1", ErrorClass: "timeout"},
		{Time: at(2), Partner: "datasea", Flow: "death", Type: monitor.Fetched, ExchangeID: "x3", FileName: "f3"},
		{Time: at(3), Partner: "bank.boc", Flow: "returns", Type: monitor.Downloaded, ExchangeID: "x4", PartnerRef: "r4", BusinessKey: "k4"},
	}
	appendAll(t, s, evs...)
	cases := []searchCase{
		{"all newest first", monitor.Filter{}, []string{"x4", "x3", "x2", "x1"}},
		{"partner", monitor.Filter{Partner: "bank.boc"}, []string{"x4", "x1"}},
		{"flow", monitor.Filter{Flow: "disbursement"}, []string{"x2", "x1"}},
		{"type", monitor.Filter{Type: monitor.Fetched}, []string{"x3"}},
		{"status", monitor.Filter{Status: monitor.Error}, []string{"x2"}},
		{"batch", monitor.Filter{BatchID: "b1"}, []string{"x2", "x1"}},
		{"file", monitor.Filter{FileName: "f3"}, []string{"x3"}},
		{"partner ref", monitor.Filter{PartnerRef: "r4"}, []string{"x4"}},
		{"business key", monitor.Filter{BusinessKey: "k1"}, []string{"x1"}},
		{"error class", monitor.Filter{ErrorClass: "timeout"}, []string{"x2"}},
		{"exchange ids", monitor.Filter{ExchangeIDs: []string{"x1", "x3"}}, []string{"x3", "x1"}},
		{"time window", monitor.Filter{From: at(1), To: at(3)}, []string{"x3", "x2"}},
		{"limit", monitor.Filter{Limit: 2}, []string{"x4", "x3"}},
		{"no match", monitor.Filter{Partner: "nobody"}, nil},
	}
	searchCases(t, s, cases)
}

// testSearchKeyWithLimit checks that a store which narrows a keyed search
// to the newest matches of the key still honours the filter's other
// conditions and time window: the newest matches of the key are not
// necessarily the newest matches of the filter.
func testSearchKeyWithLimit(t *testing.T, s monitor.Store) {
	var evs []monitor.Event
	for i := range 12 {
		ev := monitor.Event{Time: at(i), Partner: "bank.boc", Flow: "allowance", Type: monitor.Uploaded,
			ExchangeID: fmt.Sprintf("k%02d", i), BatchID: "b9", FileName: "F9"}
		if i < 3 {
			ev.Type, ev.Status, ev.ErrorClass = monitor.Failed, monitor.Error, "format"
		}
		if i%4 == 1 {
			ev.Partner = "bank.ccb"
		}
		evs = append(evs, ev)
	}
	// Another batch, newer, that a key lookup must not let in.
	evs = append(evs, monitor.Event{Time: at(20), Partner: "bank.boc", Flow: "allowance", Type: monitor.Uploaded, ExchangeID: "other", BatchID: "b10"})
	appendAll(t, s, evs...)
	cases := []searchCase{
		{"newest of the key", monitor.Filter{BatchID: "b9", Limit: 3}, []string{"k11", "k10", "k09"}},
		{"key and status", monitor.Filter{BatchID: "b9", Status: monitor.Error, Limit: 2}, []string{"k02", "k01"}},
		{"key and error class", monitor.Filter{FileName: "F9", ErrorClass: "format", Limit: 1}, []string{"k02"}},
		{"key and partner", monitor.Filter{BatchID: "b9", Partner: "bank.ccb", Limit: 2}, []string{"k09", "k05"}},
		{"key and window", monitor.Filter{BatchID: "b9", To: at(4), Limit: 2}, []string{"k03", "k02"}},
		{"two keys", monitor.Filter{BatchID: "b9", FileName: "F9", Limit: 1}, []string{"k11"}},
		{"key of another batch", monitor.Filter{BatchID: "b9", FileName: "nope"}, nil},
		{"exchange ids across partners", monitor.Filter{ExchangeIDs: []string{"k01", "k02", "k05"}, Limit: 2}, []string{"k05", "k02"}},
		{"batch of one partner flow", monitor.Filter{BatchID: "b10", Flow: "allowance"}, []string{"other"}},
		{"batch of one partner flow, another partner", monitor.Filter{BatchID: "b10", Partner: "bank.ccb"}, nil},
		{"batch of one partner flow, another flow", monitor.Filter{BatchID: "b10", Flow: "returns"}, nil},
		{"batch across partners, window", monitor.Filter{BatchID: "b9", From: at(5), To: at(7)}, []string{"k06", "k05"}},
		{"unknown batch", monitor.Filter{BatchID: "b11"}, nil},
	}
	searchCases(t, s, cases)
}

// searchCase is a filter and the exchange ids it must find, newest first.
type searchCase struct {
	name string
	f    monitor.Filter
	want []string
}

func searchCases(t *testing.T, s monitor.Store, cases []searchCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Search(ctx(t), tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if ids := exchangeIDs(got); !reflect.DeepEqual(ids, tc.want) {
				t.Errorf("got %v, want %v", ids, tc.want)
			}
		})
	}
}

func exchangeIDs(evs []monitor.Event) []string {
	var ids []string
	for _, e := range evs {
		ids = append(ids, e.ExchangeID)
	}
	return ids
}

func testLineage(t *testing.T, s monitor.Store) {
	appendAll(t, s,
		monitor.Event{Time: at(0), Partner: "bank.boc", Flow: "returns", Type: monitor.Downloaded, ExchangeID: "file"},
		monitor.Event{Time: at(1), Partner: "bank.boc", Flow: "returns", Type: monitor.Transformed, ExchangeID: "rec1", ParentIDs: []string{"file"}},
		monitor.Event{Time: at(1), Partner: "bank.boc", Flow: "returns", Type: monitor.Transformed, ExchangeID: "rec2", ParentIDs: []string{"file"}},
		monitor.Event{Time: at(2), Partner: "bank.boc", Flow: "returns", Type: monitor.Sent, ExchangeID: "del1", ParentIDs: []string{"rec1"}},
		monitor.Event{Time: at(3), Partner: "bank.boc", Flow: "returns", Type: monitor.Retried, ExchangeID: "del1", ParentIDs: []string{"rec1"}},
	)
	links, err := s.Children(ctx(t), []string{"file", "rec1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(links, func(i, j int) bool {
		return links[i].Parent+links[i].Child < links[j].Parent+links[j].Child
	})
	want := []monitor.Link{{Parent: "file", Child: "rec1"}, {Parent: "file", Child: "rec2"}, {Parent: "rec1", Child: "del1"}}
	if !reflect.DeepEqual(links, want) {
		t.Errorf("children %v, want %v", links, want)
	}
	l, err := monitor.TraceLineage(ctx(t), s, "rec1", 5)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := l.IDs(), []string{"del1", "file", "rec1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("lineage ids %v, want %v", got, want)
	}
}

func testAggregate(t *testing.T, s monitor.Store) {
	var evs []monitor.Event
	for i := range 20 {
		ev := monitor.Event{Time: at(i), Partner: "bank.boc", Flow: "disbursement", Type: monitor.Sent,
			ExchangeID: fmt.Sprint("a", i), Duration: time.Duration(i+1) * time.Second, Records: 10, Bytes: 100, AmountFen: 5}
		if i%5 == 0 {
			ev.Status, ev.Type, ev.RecordsFailed = monitor.Error, monitor.Failed, 1
		}
		evs = append(evs, ev)
	}
	evs = append(evs,
		monitor.Event{Time: at(3), Partner: "bank.boc", Flow: "disbursement", Type: monitor.Retried, ExchangeID: "a3"},
		monitor.Event{Time: at(4), Partner: "bank.boc", Flow: "disbursement", Type: monitor.DeadLettered, Status: monitor.Error, ExchangeID: "a4"},
		monitor.Event{Time: at(5), Partner: "villagebank.01", Flow: "verification", Type: monitor.Validated, Status: monitor.Error, ErrorClass: "format", ExchangeID: "v1"},
		monitor.Event{Time: at(6), Partner: "villagebank.01", Flow: "verification", Type: monitor.Received, ExchangeID: "v2"},
		monitor.Event{Time: at(90), Partner: "villagebank.01", Flow: "verification", Type: monitor.Received, ExchangeID: "late"},
	)
	appendAll(t, s, evs...)
	aggs, err := s.Aggregate(ctx(t), monitor.AggQuery{From: at(0), To: at(60), SlowerThan: 15 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(aggs) != 2 {
		t.Fatalf("got %d groups, want 2: %+v", len(aggs), aggs)
	}
	sort.Slice(aggs, func(i, j int) bool { return aggs[i].Partner < aggs[j].Partner })
	boc := aggs[0]
	want := monitor.Agg{Partner: "bank.boc", Flow: "disbursement", Events: 22, Errors: 5, Retries: 1, DeadLetters: 1,
		Records: 200, RecordsFailed: 4, Slow: 5, Bytes: 2000, AmountFen: 100, P95: 19 * time.Second}
	// p95 of 1..20 s is 19 s (nearest rank); ClickHouse may interpolate a little.
	if d := boc.P95 - want.P95; d < -time.Second || d > time.Second {
		t.Errorf("p95 %v, want about %v", boc.P95, want.P95)
	}
	boc.P95 = want.P95
	if boc != want {
		t.Errorf("boc\n got %+v\nwant %+v", boc, want)
	}
	vb := aggs[1]
	if vb.Events != 2 || vb.Errors != 1 || vb.FormatErrors != 1 || vb.P95 != 0 {
		t.Errorf("village bank %+v", vb)
	}
	if r := boc.ErrorRate(); r < 0.22 || r > 0.23 {
		t.Errorf("error rate %v", r)
	}
	// Coarse: from the rollup when SlowerThan is one of its bounds, from
	// the raw events otherwise; the same counts either way.
	for _, slower := range []struct {
		d    time.Duration
		slow int64
	}{{15 * time.Second, 5}, {7 * time.Second, 13}, {0, 0}} {
		coarse, err := s.Aggregate(ctx(t), monitor.AggQuery{From: at(0), To: at(60), Coarse: true, SkipP95: true, SlowerThan: slower.d})
		if err != nil {
			t.Fatal(err)
		}
		sort.Slice(coarse, func(i, j int) bool { return coarse[i].Partner < coarse[j].Partner })
		if len(coarse) != 2 {
			t.Fatalf("coarse aggregate %+v", coarse)
		}
		b, v := coarse[0], coarse[1]
		if b.Events != 22 || b.Errors != 5 || b.Bytes != 2000 || b.Records != 200 || b.RecordsFailed != 4 ||
			b.FormatErrors != 0 || b.Slow != slower.slow {
			t.Errorf("coarse aggregate slower than %v: bank %+v", slower.d, b)
		}
		if v.Events != 2 || v.Errors != 1 || v.FormatErrors != 1 {
			t.Errorf("coarse aggregate slower than %v: village bank %+v", slower.d, v)
		}
	}
}

// testCoarseMatchesRaw checks a coarse aggregate over several days, which a
// store may answer from hourly and daily rollups, against the raw one, on
// a window that starts and ends on hours inside a day.
func testCoarseMatchesRaw(t *testing.T, s monitor.Store) {
	var evs []monitor.Event
	for i := range 4 * 24 * 3 {
		ev := monitor.Event{Time: Base.Add(time.Duration(i) * 20 * time.Minute), Partner: []string{"bank.boc", "datasea"}[i%2],
			Flow: "f", Type: monitor.Received, ExchangeID: fmt.Sprint("c", i), Records: int64(i % 7), Bytes: int64(i),
			Duration: time.Duration(i%90) * time.Second}
		if i%11 == 0 {
			ev.Status, ev.Type, ev.ErrorClass, ev.RecordsFailed = monitor.Error, monitor.Validated, "format", 1
		}
		evs = append(evs, ev)
	}
	appendAll(t, s, evs...)
	from, to := Base.Add(5*time.Hour), Base.Add(3*24*time.Hour+17*time.Hour)
	for _, slower := range []time.Duration{30 * time.Second, time.Minute} {
		raw, err := s.Aggregate(ctx(t), monitor.AggQuery{From: from, To: to, SlowerThan: slower, SkipP95: true})
		if err != nil {
			t.Fatal(err)
		}
		coarse, err := s.Aggregate(ctx(t), monitor.AggQuery{From: from, To: to, SlowerThan: slower, SkipP95: true, Coarse: true})
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) != 2 || len(coarse) != 2 {
			t.Fatalf("raw %d groups, coarse %d, want 2", len(raw), len(coarse))
		}
		for i := range raw {
			r, c := raw[i], coarse[i]
			if c.Partner != r.Partner || c.Events != r.Events || c.Errors != r.Errors || c.Bytes != r.Bytes || c.Records != r.Records ||
				c.RecordsFailed != r.RecordsFailed || c.FormatErrors != r.FormatErrors || c.Slow != r.Slow {
				t.Errorf("slower than %v:\ncoarse %+v\nraw    %+v", slower, c, r)
			}
		}
	}
}

func testLastSeen(t *testing.T, s monitor.Store) {
	appendAll(t, s,
		monitor.Event{Time: at(0), Partner: "datasea", Flow: "death", Type: monitor.Fetched, ExchangeID: "d1"},
		monitor.Event{Time: at(10), Partner: "datasea", Flow: "death", Type: monitor.Failed, Status: monitor.Error, ExchangeID: "d2"},
		monitor.Event{Time: at(5), Partner: "datasea", Flow: "death", Type: monitor.Fetched, ExchangeID: "d3"},
	)
	appendAll(t, s, monitor.Event{Time: at(2), Partner: "joblib", Flow: "cases", Type: monitor.Failed, Status: monitor.Error, ExchangeID: "j1"})
	got, err := s.LastSeen(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(got, func(i, j int) bool { return got[i].Partner < got[j].Partner })
	if len(got) != 2 {
		t.Fatalf("got %+v", got)
	}
	if !got[0].LastEvent.Equal(at(10)) || !got[0].LastOK.Equal(at(5)) {
		t.Errorf("datasea %+v", got[0])
	}
	if !got[1].LastEvent.Equal(at(2)) || !got[1].LastOK.IsZero() {
		t.Errorf("joblib %+v", got[1])
	}
}

func testBatches(t *testing.T, s monitor.Store) {
	b := "allowance-2026-11"
	appendAll(t, s,
		monitor.Event{Time: at(0), Partner: "datasea", Flow: "allowance", Type: monitor.Fetched, BatchID: b, Stage: "intake", Records: 4400000, ExchangeID: "i"},
		monitor.Event{Time: at(4), Partner: "datasea", Flow: "allowance", Type: monitor.Validated, BatchID: b, Stage: "intake", Records: 4399000, ExchangeID: "i"},
		monitor.Event{Time: at(5), Partner: "datasea", Flow: "allowance", Type: monitor.StageChanged, BatchID: b, Stage: "intake", Records: 4399000, ExchangeID: "i"},
		monitor.Event{Time: at(10), Partner: "bank.boc", Flow: "allowance", Type: monitor.Uploaded, BatchID: b, Stage: "send", Records: 1000, ExchangeID: "s1"},
		monitor.Event{Time: at(11), Partner: "bank.boc", Flow: "allowance", Type: monitor.Failed, Status: monitor.Error, BatchID: b, Stage: "send", RecordsFailed: 2, ExchangeID: "s2"},
		monitor.Event{Time: at(12), Partner: "bank.boc", Flow: "other", Type: monitor.Sent, ExchangeID: "nobatch"},
	)
	got, err := s.Batches(ctx(t), monitor.BatchQuery{BatchID: b})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %+v", got)
	}
	sort.Slice(got, func(i, j int) bool { return got[i].FirstAt.Before(got[j].FirstAt) })
	in := got[0]
	if in.Stage != "intake" || in.Events != 3 || in.RecordsIn != 4400000 || in.RecordsOut != 4399000 ||
		!in.FirstAt.Equal(at(0)) || !in.LastAt.Equal(at(5)) || in.LastType != monitor.StageChanged || in.Partner != "datasea" {
		t.Errorf("intake %+v", in)
	}
	send := got[1]
	if send.Stage != "send" || send.Errors != 1 || send.RecordsOut != 1000 || send.RecordsFailed != 2 ||
		send.LastStatus != monitor.Error || send.LastType != monitor.Failed {
		t.Errorf("send %+v", send)
	}
	all, err := s.Batches(ctx(t), monitor.BatchQuery{From: at(0)})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 {
		t.Errorf("batches without id: %d rows, want 2 (events without batch are left out)", len(all))
	}
}

func testFailures(t *testing.T, s monitor.Store) {
	appendAll(t, s,
		monitor.Event{Time: at(0), Partner: "bank.ccb", Flow: "returns", Type: monitor.Failed, Status: monitor.Error, ErrorClass: "format", ErrorMessage: "line 3: bad amount", ExchangeID: "c1"},
		monitor.Event{Time: at(1), Partner: "bank.ccb", Flow: "returns", Type: monitor.Failed, Status: monitor.Error, ErrorClass: "format", ErrorMessage: "line 9: bad amount", ExchangeID: "c2"},
		monitor.Event{Time: at(2), Partner: "bank.ccb", Flow: "returns", Type: monitor.DeadLettered, Status: monitor.Error, ErrorClass: "timeout", ErrorMessage: "deadline", ExchangeID: "c3"},
		monitor.Event{Time: at(3), Partner: "joblib", Flow: "status", Type: monitor.DeadLettered, Status: monitor.Error, ErrorClass: "http_503", ExchangeID: "j1"},
		monitor.Event{Time: at(4), Partner: "joblib", Flow: "status", Type: monitor.DeadLettered, Status: monitor.Error, ErrorClass: "http_503", ExchangeID: "j2"},
		monitor.Event{Time: at(5), Partner: "joblib", Flow: "status", Type: monitor.Replayed, ExchangeID: "j1"},
		monitor.Event{Time: at(6), Partner: "bank.ccb", Flow: "returns", Type: monitor.Sent, ExchangeID: "ok"},
	)
	groups, err := s.Failures(ctx(t), at(0), at(60))
	if err != nil {
		t.Fatal(err)
	}
	byClass := map[string]monitor.FailureGroup{}
	for _, g := range groups {
		byClass[g.Partner+"/"+g.ErrorClass] = g
	}
	if len(groups) != 3 {
		t.Errorf("groups %+v", groups)
	}
	if g := byClass["bank.ccb/format"]; g.Count != 2 || g.DeadLetters != 0 || !g.LastAt.Equal(at(1)) || g.Sample != "line 9: bad amount" {
		t.Errorf("format group %+v", g)
	}
	if g := byClass["joblib/http_503"]; g.Count != 2 || g.DeadLetters != 2 {
		t.Errorf("http_503 group %+v", g)
	}
	dl, err := s.DeadLetters(ctx(t), monitor.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := exchangeIDs(dl), []string{"j2", "c3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("open dead letters %v, want %v", got, want)
	}
	dl, err = s.DeadLetters(ctx(t), monitor.Filter{Partner: "bank.ccb"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := exchangeIDs(dl), []string{"c3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("open dead letters of ccb %v, want %v", got, want)
	}
}

func testSeries(t *testing.T, s monitor.Store) {
	var evs []monitor.Event
	for i := range 30 {
		ev := monitor.Event{Time: at(i), Partner: "funeral.fh01", Flow: "booking", Type: monitor.Received, Bytes: 10,
			ExchangeID: fmt.Sprint("s", i), Duration: 100 * time.Millisecond}
		if i == 12 {
			ev.Status = monitor.Error
		}
		evs = append(evs, ev)
	}
	evs = append(evs, monitor.Event{Time: at(1), Partner: "other", Flow: "x", Type: monitor.Received, ExchangeID: "o"})
	appendAll(t, s, evs...)
	pts, err := s.Series(ctx(t), monitor.SeriesQuery{From: at(0), To: at(30), Step: 10 * time.Minute, Partner: "funeral.fh01"})
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 3 {
		t.Fatalf("points %+v", pts)
	}
	for i, p := range pts {
		if !p.T.Equal(at(10*i)) || p.Events != 10 || p.Bytes != 100 {
			t.Errorf("point %d %+v", i, p)
		}
		if d := p.P95 - 100*time.Millisecond; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("point %d p95 %v", i, p.P95)
		}
	}
	if pts[1].Errors != 1 || pts[0].Errors != 0 {
		t.Errorf("errors %+v", pts)
	}
	all, err := s.Series(ctx(t), monitor.SeriesQuery{From: at(0), To: at(30), Step: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 1 || all[0].Events != 31 {
		t.Errorf("all flows %+v", all)
	}
}

func testEmpty(t *testing.T, s monitor.Store) {
	c := ctx(t)
	if err := s.Append(c, nil); err != nil {
		t.Errorf("Append(nil): %v", err)
	}
	if evs, err := s.Search(c, monitor.Filter{}); err != nil || len(evs) != 0 {
		t.Errorf("Search: %v %v", evs, err)
	}
	if l, err := s.Children(c, nil, 0); err != nil || len(l) != 0 {
		t.Errorf("Children: %v %v", l, err)
	}
	if a, err := s.Aggregate(c, monitor.AggQuery{From: at(0), To: at(1)}); err != nil || len(a) != 0 {
		t.Errorf("Aggregate: %v %v", a, err)
	}
	if l, err := s.LastSeen(c); err != nil || len(l) != 0 {
		t.Errorf("LastSeen: %v %v", l, err)
	}
	if p, err := s.Series(c, monitor.SeriesQuery{From: at(0), To: at(1), Step: time.Minute}); err != nil || len(p) != 0 {
		t.Errorf("Series: %v %v", p, err)
	}
}
