package datasea

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/text/encoding/simplifiedchinese"

	"github.com/shanghai-mca/mzhub/clock"
	"github.com/shanghai-mca/mzhub/security/mask"
)

// Kind is the kind of a data-sea record.
type Kind string

// The record kinds.
const (
	// Death is a police death record (公安死亡数据); Date is the date of death.
	Death Kind = "death"
	// MoveOut is a household-registration move out of Shanghai (迁出); Date is the move date.
	MoveOut Kind = "move_out"
	// MoveIn is a household-registration move into Shanghai (迁入); Date is the move date.
	MoveIn Kind = "move_in"
)

// Feeds are the platform's feeds and the kinds each carries.
var Feeds = map[string][]Kind{
	"death":     {Death},
	"migration": {MoveOut, MoveIn},
}

// FeedOf returns the feed a kind travels in.
func FeedOf(k Kind) string {
	if k == Death {
		return "death"
	}
	return "migration"
}

// kindNames accepts the platform's Chinese codes beside the English ones.
var kindNames = map[string]Kind{
	"death": Death, "死亡": Death,
	"move_out": MoveOut, "迁出": MoveOut,
	"move_in": MoveIn, "迁入": MoveIn,
}

// ParseKind returns the kind of a code ("death", "迁出", ...).
func ParseKind(s string) (Kind, bool) {
	k, ok := kindNames[strings.TrimSpace(s)]
	return k, ok
}

// Record is one death or move record, the shape every way in produces.
type Record struct {
	// ID is the platform's record id; a record is applied once by it.
	ID string `json:"record_id"`
	// Kind is death, move_out or move_in.
	Kind Kind `json:"type"`
	// IDNumber is the person's resident ID number (GB 11643).
	IDNumber string `json:"id_number"`
	// Name is the person's name.
	Name string `json:"name"`
	// Date is the date of death or of the move, YYYY-MM-DD (Asia/Shanghai).
	Date string `json:"event_date"`
	// District is the Shanghai division code concerned (310101 … 310151).
	District string `json:"district"`
	// Region is the other side of a move: where the person went (move_out)
	// or came from (move_in); empty for a death.
	Region string `json:"region,omitempty"`
}

// Masked returns a copy safe to show or log (masked ID, masked name).
func (r Record) Masked() Record {
	r.IDNumber = mask.IDNumber(r.IDNumber)
	r.Name = mask.Name(r.Name)
	return r
}

// Day returns the record's date.
func (r Record) Day() (time.Time, error) {
	return time.ParseInLocation(time.DateOnly, r.Date, clock.Shanghai)
}

// Check reports why the record cannot be applied (nil when it can): a
// missing record id, an unknown kind, a wrong ID number, a date that is not
// a date or lies after now, a district that is not a division code.
func (r Record) Check(now time.Time) error {
	var why []string
	if strings.TrimSpace(r.ID) == "" || len(r.ID) > 64 {
		why = append(why, "record id missing or longer than 64")
	}
	if _, ok := kindNames[string(r.Kind)]; !ok {
		why = append(why, fmt.Sprintf("unknown type %q", r.Kind))
	}
	if !mask.ValidID(r.IDNumber) {
		why = append(why, "id number "+mask.IDNumber(r.IDNumber)+" fails its check digit or format")
	}
	if d, err := r.Day(); err != nil {
		why = append(why, fmt.Sprintf("event date %q is not YYYY-MM-DD", r.Date))
	} else if d.After(now) {
		why = append(why, "event date "+r.Date+" lies in the future")
	}
	if !division(r.District) {
		why = append(why, fmt.Sprintf("district %q is not a 6-digit division code", r.District))
	}
	if len(why) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrMalformed, strings.Join(why, "; "))
}

func division(s string) bool {
	if len(s) != 6 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Normalize returns r with its kind in English and trimmed fields.
func (r Record) Normalize() Record {
	if k, ok := ParseKind(string(r.Kind)); ok {
		r.Kind = k
	}
	r.ID = strings.TrimSpace(r.ID)
	r.IDNumber = strings.ToUpper(strings.TrimSpace(r.IDNumber))
	r.Name = strings.TrimSpace(r.Name)
	r.Date = strings.TrimSpace(r.Date)
	if len(r.Date) > 10 && r.Date[10] == 'T' {
		r.Date = r.Date[:10] // a DATE column read as a timestamp (front-end tables)
	}
	r.District = strings.TrimSpace(r.District)
	r.Region = strings.TrimSpace(r.Region)
	return r
}

// Bad is a record that was quarantined instead of applied.
type Bad struct {
	// Ref says where it came from: "api death page 3 item 7", "DEATH_20261201.txt line 12".
	Ref string
	// RecordID is the record id when one could be read.
	RecordID string
	// Reason says what is wrong (masked).
	Reason string
	// Raw is the start of the record, masked.
	Raw string
}

// FileFields is the number of fields of a line of a batch file:
// record_id|type|id_number|name|event_date|district|region.
const FileFields = 7

// ParseFile reads a batch file (GB18030 text, one record a line, fields
// separated by |, no header; blank lines skipped). Lines that cannot be
// applied are returned as Bad with their line numbers; now bounds dates.
func ParseFile(name string, r io.Reader, now time.Time) ([]Record, []Bad, error) {
	sc := bufio.NewScanner(simplifiedchinese.GB18030.NewDecoder().Reader(r))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var recs []Record
	var bad []Bad
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" {
			continue
		}
		ref := fmt.Sprintf("%s line %d", name, line)
		f := strings.Split(text, "|")
		if len(f) != FileFields {
			bad = append(bad, Bad{Ref: ref, Reason: fmt.Sprintf("%d fields, want %d", len(f), FileFields), Raw: maskRaw(text)})
			continue
		}
		rec := Record{ID: f[0], Kind: Kind(f[1]), IDNumber: f[2], Name: f[3], Date: f[4], District: f[5], Region: f[6]}.Normalize()
		if err := rec.Check(now); err != nil {
			bad = append(bad, Bad{Ref: ref, RecordID: rec.ID, Reason: err.Error(), Raw: maskRaw(text)})
			continue
		}
		recs = append(recs, rec)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("datasea: read %s line %d: %w", name, line+1, err)
	}
	return recs, bad, nil
}

// WriteFile writes records as a batch file (GB18030), the platform's format.
func WriteFile(w io.Writer, recs []Record) error {
	enc := simplifiedchinese.GB18030.NewEncoder().Writer(w)
	var b bytes.Buffer
	for _, r := range recs {
		fmt.Fprintf(&b, "%s|%s|%s|%s|%s|%s|%s\n", r.ID, r.Kind, r.IDNumber, r.Name, r.Date, r.District, r.Region)
	}
	_, err := enc.Write(b.Bytes())
	return err
}

// maskRaw masks ID, account and phone numbers in a raw line and keeps it short.
func maskRaw(s string) string {
	r := mask.Text(s)
	if len(r) > 200 {
		r = r[:200]
	}
	return r
}
