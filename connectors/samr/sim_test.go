package samr_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/shanghai-mca/mzhub/connectors/samr"
	"github.com/shanghai-mca/mzhub/connectors/samr/samrsim"
)

// TestLookupsAgainstSimulator: a canteen's food business licence (valid,
// expired, none) and the abnormal-operation list since a day.
func TestLookupsAgainstSimulator(t *testing.T) {
	sim, err := samrsim.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	c, err := samr.New(sim.Config())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	today := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	for name, valid := range map[string]bool{"黄浦区外滩街道社区长者食堂": true, "静安区临汾路街道长者食堂": false} {
		ls, err := c.Canteen(ctx, name)
		if err != nil || len(ls) != 1 || ls[0].Valid(today) != valid {
			t.Errorf("%s: %+v %v", name, ls, err)
		}
	}
	if _, err := c.Canteen(ctx, "徐汇区长桥街道社区长者食堂"); !errors.Is(err, samr.ErrNoLicence) {
		t.Errorf("canteen without licence: %v", err)
	}
	es, err := c.AbnormalSince(ctx, sim.AsOf.AddDate(0, 0, -14))
	if err != nil || len(es) != 3 {
		t.Fatalf("abnormal list: %d %v", len(es), err)
	}
	bad, _ := samr.New(samr.Config{URL: sim.URL(), AppKey: "wrong"})
	if _, err := bad.AbnormalSince(ctx, today); err == nil {
		t.Fatal("a wrong app key was accepted")
	}
}
