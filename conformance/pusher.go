package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/shanghai-mca/mzhub/apispec"
	"github.com/shanghai-mca/mzhub/services/funeral"
)

// PusherOptions configure a check of a partner's pushes in the sandbox.
type PusherOptions struct {
	// Store is the sandbox's funeral store.
	Store *funeral.Store
	// Partner is the partner checked.
	Partner funeral.Partner
	// Now tells the time; time.Now when nil.
	Now func() time.Time
}

// RunPusher checks, from the hub's side, that a partner's pushes in the
// sandbox cover every operation its role requires: each kind created,
// updated with a higher version and (for resources) withdrawn once, and
// every stored record valid against the published schema.
func RunPusher(ctx context.Context, opts PusherOptions) (Report, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	spec, err := apispec.Partner()
	if err != nil {
		return Report{}, err
	}
	rep := Report{Suite: "pusher", Target: opts.Partner.ID, Started: opts.Now()}
	sum, err := opts.Store.Summary(ctx, opts.Partner.ID)
	if err != nil {
		return rep, err
	}
	add := func(name, op string, err error) {
		r := Result{Name: name, Operation: op, Passed: err == nil}
		if err != nil {
			r.Message = err.Error()
		}
		rep.Results = append(rep.Results, r)
	}
	var deletes int64
	for _, kind := range funeral.KindsFor(opts.Partner.Role) {
		ks := sum[kind]
		goName := opName(kind)
		add("push/"+kind+"/create", "put"+goName, func() error {
			if ks.Records == 0 {
				return fmt.Errorf("no %s record was pushed", kind)
			}
			return nil
		}())
		add("push/"+kind+"/update", "put"+goName, func() error {
			if ks.Updated == 0 {
				return fmt.Errorf("no %s record was updated with a higher version", kind)
			}
			return nil
		}())
		deletes += ks.Deleted
		add("push/"+kind+"/stored-records-valid", "put"+goName, validateStored(ctx, opts, spec, kind))
	}
	add("push/withdraw", "", func() error {
		if deletes == 0 {
			return fmt.Errorf("no record was withdrawn (DELETE) by the partner")
		}
		return nil
	}())
	return rep, nil
}

func opName(kind string) string {
	if kind == funeral.KindDeceased {
		return "Deceased"
	}
	return strings.ToUpper(kind[:1]) + kind[1:]
}

// validateStored re-checks every stored record of a kind against its
// documented record schema.
func validateStored(ctx context.Context, opts PusherOptions, spec *apispec.Spec, kind string) error {
	schema := opName(kind) + "Record"
	var after int64
	for {
		recs, next, err := opts.Store.List(ctx, funeral.Query{PartnerID: opts.Partner.ID, Kind: kind, AfterSeq: after, Limit: 500, IncludeDeleted: true})
		if err != nil {
			return err
		}
		for _, r := range recs {
			b, _ := json.Marshal(r)
			fes, err := spec.ValidateJSON(schema, b)
			if err != nil {
				return err
			}
			if len(fes) > 0 {
				return fmt.Errorf("%s %s: %s %s", kind, r.ID, fes[0].Field, fes[0].Reason)
			}
		}
		if next == 0 {
			return nil
		}
		after = next
	}
}
