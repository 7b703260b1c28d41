package funeral

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/emmansun/gmsm/sm3"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/security/mask"
)

var shanghai = clock.Shanghai

// kindSpec describes one pushed resource kind.
type kindSpec struct {
	// Name is the stored kind (hall, vehicle, ...).
	Name string
	// Plural is the path segment (halls, ...); "" for the institution.
	Plural string
	// Schema is the component schema of the request body.
	Schema string
	// Op is the Go name in operation ids (Hall → putHall, listHalls).
	Op string
	// Roles may push it.
	Roles []Role
}

// Kind names.
const (
	KindInstitution = "institution"
	KindHall        = "hall"
	KindVehicle     = "vehicle"
	KindSupply      = "supply"
	KindSchedule    = "schedule"
	KindReservation = "reservation"
	KindDeceased    = "deceased"
	KindBurial      = "burial"
)

var (
	allRoles  = []Role{RoleFuneralHome, RoleCemetery, RoleColumbarium}
	homeRoles = []Role{RoleFuneralHome}
	kinds     = []kindSpec{
		{Name: KindHall, Plural: "halls", Schema: "Hall", Op: "Hall", Roles: homeRoles},
		{Name: KindVehicle, Plural: "vehicles", Schema: "Vehicle", Op: "Vehicle", Roles: homeRoles},
		{Name: KindSupply, Plural: "supplies", Schema: "Supply", Op: "Supply", Roles: homeRoles},
		{Name: KindSchedule, Plural: "schedules", Schema: "Schedule", Op: "Schedule", Roles: homeRoles},
		{Name: KindReservation, Plural: "reservations", Schema: "Reservation", Op: "Reservation", Roles: homeRoles},
		{Name: KindDeceased, Plural: "deceased", Schema: "Deceased", Op: "Deceased", Roles: homeRoles},
		{Name: KindBurial, Plural: "burials", Schema: "Burial", Op: "Burial", Roles: []Role{RoleCemetery, RoleColumbarium}},
	}
	institutionKind = kindSpec{Name: KindInstitution, Schema: "Institution", Op: "Institution", Roles: allRoles}
)

// Kinds lists the pushed kinds (without the institution), for tools.
func Kinds() []string {
	out := []string{KindInstitution}
	for _, k := range kinds {
		out = append(out, k.Name)
	}
	return out
}

// KindsFor lists the kinds a role pushes, the institution first.
func KindsFor(role Role) []string {
	out := []string{KindInstitution}
	for _, k := range kinds {
		if k.allows(role) {
			out = append(out, k.Name)
		}
	}
	return out
}

func (k kindSpec) allows(r Role) bool {
	for _, x := range k.Roles {
		if x == r {
			return true
		}
	}
	return false
}

// flowOf names the monitor flow of a kind.
func flowOf(kind string) string {
	if kind == KindBurial {
		return "burial-push"
	}
	return "funeral-push"
}

// prepared is a validated body ready to store.
type prepared struct {
	version int64
	hash    string
	data    []byte
	status  string
	refAt   time.Time
}

// fieldErr is a semantic problem found after schema validation.
type fieldErr struct{ field, reason string }

// prepare checks what the schema cannot (check digits, time order, role
// fit), masks personal data and extracts the indexed fields. body has passed
// the kind's schema and holds json.Number numbers.
func prepare(k kindSpec, role Role, body map[string]any, canonical []byte) (prepared, []fieldErr) {
	var errs []fieldErr
	var p prepared
	normalizeNumbers(body)
	if n, ok := body["version"].(json.Number); ok {
		p.version, _ = strconv.ParseInt(n.String(), 10, 64)
	}
	sum := sm3.Sum(canonical)
	p.hash = hex.EncodeToString(sum[:])
	order := func(a, b, where string, m map[string]any) {
		sa, _ := m[a].(string)
		sb, _ := m[b].(string)
		ta, e1 := time.Parse(time.RFC3339, sa)
		tb, e2 := time.Parse(time.RFC3339, sb)
		if e1 == nil && e2 == nil && !tb.After(ta) {
			errs = append(errs, fieldErr{where + "/" + b, b + " must be after " + a})
		}
	}
	switch k.Name {
	case KindInstitution:
		if t, _ := body["type"].(string); Role(t) != role {
			errs = append(errs, fieldErr{"/type", fmt.Sprintf("the partner is registered as %s", role)})
		}
	case KindReservation:
		order("start_at", "end_at", "", body)
		p.status, _ = body["status"].(string)
	case KindSchedule:
		date, _ := body["date"].(string)
		slots, _ := body["slots"].([]any)
		for i, s := range slots {
			m, _ := s.(map[string]any)
			where := "/slots/" + strconv.Itoa(i)
			order("start_at", "end_at", where, m)
			if st, _ := m["start_at"].(string); date != "" {
				if t, err := time.Parse(time.RFC3339, st); err == nil && t.In(shanghai).Format(time.DateOnly) != date {
					errs = append(errs, fieldErr{where + "/start_at", "not on " + date + " in Asia/Shanghai"})
				}
			}
		}
	case KindDeceased:
		p.status, _ = body["body_status"].(string)
		ref, _ := body["received_at"].(string)
		if ref == "" && p.status == "received" {
			ref, _ = body["status_at"].(string)
		}
		if t, err := time.Parse(time.RFC3339, ref); err == nil {
			p.refAt = t
		}
	}
	masked := false
	if id, ok := body["id_number"].(string); ok {
		if !mask.ValidID(id) {
			errs = append(errs, fieldErr{"/id_number", "the GB 11643 check character is wrong"})
		}
		body["id_number"] = mask.IDNumber(id)
		masked = true
	}
	if c, ok := body["contact"].(map[string]any); ok {
		if ph, ok := c["phone"].(string); ok {
			c["phone"] = mask.Phone(ph)
			masked = true
		}
	}
	if len(errs) > 0 {
		return prepared{}, errs
	}
	if !masked {
		// Nothing was masked: the canonical form is what is stored.
		p.data = canonical
		return p, nil
	}
	data, err := json.Marshal(body)
	if err != nil {
		return prepared{}, []fieldErr{{"/", "cannot be stored: " + err.Error()}}
	}
	p.data = data
	return p, nil
}

func maskPhone(s string) string { return mask.Phone(s) }

// normalizeNumbers rewrites integral numbers written with a fraction or an
// exponent (1542.0, 1.5e3), which JSON Schema counts as integers, to their
// plain form, so that what is stored and answered is what the schema says.
func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			x[k] = normalizeNumbers(c)
		}
	case []any:
		for i, c := range x {
			x[i] = normalizeNumbers(c)
		}
	case json.Number:
		s := x.String()
		if strings.ContainsAny(s, ".eE") {
			if f, err := strconv.ParseFloat(s, 64); err == nil && f == math.Trunc(f) && math.Abs(f) <= 1<<53 {
				return json.Number(strconv.FormatInt(int64(f), 10))
			}
		}
	}
	return v
}
