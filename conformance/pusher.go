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

// SandboxPrefix is where the hub serves the sandbox's partner API: the
// same operations as /partner/v1/, under /sandbox. The signature covers
// the whole path requested, this prefix included.
const SandboxPrefix = "/sandbox/partner/v1"

// PusherOptions configure a check of a partner's pushes in the sandbox.
type PusherOptions struct {
	// Store is the sandbox's funeral store.
	Store *funeral.Store
	// StoreName says where Store is (a file or "the hub's sandbox"), for
	// the causes of failures.
	StoreName string
	// Production, when set, is the hub's main funeral store: when the
	// sandbox holds nothing of the partner but this does, the failure says
	// the partner pushed to /partner/v1/ instead of /sandbox/partner/v1/.
	Production *funeral.Store
	// Partner is the partner checked.
	Partner funeral.Partner
	// Now tells the time; time.Now when nil.
	Now func() time.Time
}

// kindPaths maps each pushed kind to its path under /partner/v1/
// (TestKindPathsInSpec holds them to the spec).
var kindPaths = map[string]string{
	funeral.KindInstitution: "institution",
	funeral.KindHall:        "halls/{id}",
	funeral.KindVehicle:     "vehicles/{id}",
	funeral.KindSupply:      "supplies/{id}",
	funeral.KindSchedule:    "schedules/{id}",
	funeral.KindReservation: "reservations/{id}",
	funeral.KindDeceased:    "deceased/{id}",
	funeral.KindBurial:      "burials/{id}",
}

func kindPath(kind string) string {
	if p, ok := kindPaths[kind]; ok {
		return SandboxPrefix + "/" + p
	}
	return SandboxPrefix + "/" + kind
}

// RunPusher checks, from the hub's side, that a partner's pushes in the
// sandbox cover every operation its role requires: each kind created,
// updated with a higher version and (for resources) withdrawn once, and
// every stored record valid against the published schema. No check passes
// over zero records: a kind with nothing stored fails its validity check
// too, and a partner with nothing at all in the sandbox fails first, with
// where to push.
func RunPusher(ctx context.Context, opts PusherOptions) (Report, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.StoreName == "" {
		opts.StoreName = "the sandbox store"
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
	add := func(name, op string, start time.Time, err error, fix string) {
		r := Result{Name: name, Operation: op, Passed: err == nil, Duration: time.Since(start)}
		if err != nil {
			r.Message, r.Fix = err.Error(), fix
		}
		rep.Results = append(rep.Results, r)
	}
	kinds := funeral.KindsFor(opts.Partner.Role)
	var total, deletes int64
	for _, kind := range kinds {
		total += sum[kind].Records
	}

	start := time.Now()
	var fix string
	err = nil
	if total == 0 {
		err = fmt.Errorf("0 records pushed to %s by %s", opts.StoreName, opts.Partner.ID)
		fix = fmt.Sprintf("push first: PUT %s/… signed with a key id of %s (the signature covers the path with %s), then run this again; docs/onboarding.md step 3",
			SandboxPrefix, opts.Partner.ID, SandboxPrefix)
		if opts.Production != nil {
			if prod, perr := opts.Production.Summary(ctx, opts.Partner.ID); perr == nil {
				var n int64
				for _, ks := range prod {
					n += ks.Records
				}
				if n > 0 {
					err = fmt.Errorf("0 records pushed to %s by %s, but %d in the production store: they were pushed to /partner/v1/…", opts.StoreName, opts.Partner.ID, n)
					fix = fmt.Sprintf("push to %s/… instead of /partner/v1/… (and sign that path), then run this again", SandboxPrefix)
				}
			}
		}
	}
	add("push/records-in-sandbox", "", start, err, fix)

	for _, kind := range kinds {
		ks := sum[kind]
		goName := opName(kind)
		path := kindPath(kind)
		start := time.Now()
		var err error
		if ks.Records == 0 {
			err = fmt.Errorf("no %s record was pushed (0 in %s)", kind, opts.StoreName)
		}
		add("push/"+kind+"/create", "put"+goName, start, err,
			fmt.Sprintf("PUT %s with \"version\": 1 and a body valid against %sRecord", path, goName))
		start = time.Now()
		err = nil
		if ks.Updated == 0 {
			err = fmt.Errorf("no %s record was updated with a higher version (%d stored, none pushed twice)", kind, ks.Records)
		}
		add("push/"+kind+"/update", "put"+goName, start, err,
			fmt.Sprintf("PUT %s again, same id, with a higher \"version\"", path))
		deletes += ks.Deleted
		start = time.Now()
		err = nil
		if ks.Records == 0 {
			err = fmt.Errorf("0 %s records to validate: a check over no records proves nothing", kind)
		} else {
			err = validateStored(ctx, opts, spec, kind)
		}
		add("push/"+kind+"/stored-records-valid", "put"+goName, start, err,
			fmt.Sprintf("push %s records that follow the spec's %s schema (docs/api/partner.yaml)", kind, goName))
	}
	start = time.Now()
	err = nil
	if deletes == 0 {
		err = fmt.Errorf("no record was withdrawn (DELETE) by %s", opts.Partner.ID)
	}
	withdrawable := kindPath(kinds[len(kinds)-1])
	add("push/withdraw", "", start, err, fmt.Sprintf("withdraw one record: DELETE %s (any pushed record but the institution)", withdrawable))
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
