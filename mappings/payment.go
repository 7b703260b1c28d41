package mappings

import (
	"fmt"
	"time"
)

// Canonical payment field names, used in layouts as `canonical: <name>`.
const (
	CanonPersonID   = "person_id"
	CanonName       = "name"
	CanonAccount    = "account"
	CanonBankCode   = "bank_code"
	CanonAmount     = "amount_fen"
	CanonPeriod     = "period"
	CanonReference  = "reference"
	CanonDivision   = "division"
	CanonPayDate    = "pay_date"
	CanonStatus     = "status"
	CanonReasonCode = "reason_code"
	CanonReasonText = "reason_text"
)

var canonicalNames = []string{CanonPersonID, CanonName, CanonAccount, CanonBankCode, CanonAmount,
	CanonPeriod, CanonReference, CanonDivision, CanonPayDate, CanonStatus, CanonReasonCode, CanonReasonText}

func isCanonical(name string) bool {
	for _, n := range canonicalNames {
		if n == name {
			return true
		}
	}
	return false
}

// PaymentStatus is the result of one payment in a return file.
type PaymentStatus string

// Payment statuses.
const (
	// StatusNone is a payment that has not been returned yet.
	StatusNone PaymentStatus = ""
	// StatusPaid is a payment the bank executed.
	StatusPaid PaymentStatus = "paid"
	// StatusFailed is a payment the bank refused (see ReasonCode).
	StatusFailed PaymentStatus = "failed"
)

// PaymentRecord is the hub's canonical payment (disbursement or deduction)
// record and its return. See docs/canonical-payment.md.
type PaymentRecord struct {
	// PersonID is the resident ID number (GB 11643, 18 characters).
	PersonID string
	// Name is the person's name.
	Name string
	// Account is the bank account or card number.
	Account string
	// BankCode is the bank's code (code table bank-codes).
	BankCode string
	// AmountFen is the amount in fen; never a float.
	AmountFen int64
	// Period is the allowance month, "2026-11".
	Period string
	// Reference is the hub's unique payment reference; returns are
	// matched by it.
	Reference string
	// Division is the Shanghai division code, 310101-310151.
	Division string
	// PayDate is the value date (Asia/Shanghai), zero if unknown.
	PayDate time.Time
	// Status is set on returns: paid or failed.
	Status PaymentStatus
	// ReasonCode is the bank's result code on returns.
	ReasonCode string
	// ReasonText is the bank's result text on returns.
	ReasonText string
}

// PaymentFromRecord reads the fields of r that carry canonical names.
// Enum status fields are translated through their code table: the table
// value is the Status, the code the ReasonCode and the text the ReasonText
// (unless the layout has own fields for them).
func PaymentFromRecord(r *Record) PaymentRecord {
	s := r.schema
	var p PaymentRecord
	get := func(name string) (Value, *Field) {
		i := s.CanonicalIndex(name)
		if i < 0 {
			return Value{}, nil
		}
		return r.Values[i], &s.Fields[i]
	}
	p.PersonID = textOf(get(CanonPersonID))
	p.Name = textOf(get(CanonName))
	p.Account = textOf(get(CanonAccount))
	p.BankCode = textOf(get(CanonBankCode))
	if v, f := get(CanonAmount); f != nil {
		p.AmountFen = v.Int
	}
	if v, f := get(CanonPeriod); f != nil {
		if f.date != nil && v.Set {
			p.Period = TimeOf(f.Type, v.Int).Format("2006-01")
		} else {
			p.Period = v.Str
		}
	}
	p.Reference = textOf(get(CanonReference))
	p.Division = textOf(get(CanonDivision))
	if v, f := get(CanonPayDate); f != nil && f.date != nil && v.Set {
		p.PayDate = TimeOf(f.Type, v.Int)
	}
	p.ReasonCode = textOf(get(CanonReasonCode))
	p.ReasonText = textOf(get(CanonReasonText))
	if v, f := get(CanonStatus); f != nil && v.Set {
		if f.Codes != nil {
			e, _ := f.Codes.Lookup(v.Str)
			p.Status = PaymentStatus(e.Value)
			if s.CanonicalIndex(CanonReasonCode) < 0 {
				p.ReasonCode = v.Str
			}
			if s.CanonicalIndex(CanonReasonText) < 0 {
				p.ReasonText = e.Text
			}
		} else {
			p.Status = PaymentStatus(v.Str)
		}
	}
	return p
}

func textOf(v Value, f *Field) string {
	if f == nil || !v.Set {
		return ""
	}
	if f.Type.numeric() {
		if f.date != nil {
			return TimeOf(f.Type, v.Int).Format(time.DateOnly)
		}
		return fmt.Sprint(v.Int)
	}
	return v.Str
}

// ToRecord writes p into the fields of r that carry canonical names. Other
// fields are left as they are.
func (p *PaymentRecord) ToRecord(r *Record) error {
	s := r.schema
	set := func(name, text string) error {
		i := s.CanonicalIndex(name)
		if i < 0 {
			return nil
		}
		return r.setText(i, text)
	}
	for _, kv := range [...]struct{ k, v string }{
		{CanonPersonID, p.PersonID}, {CanonName, p.Name}, {CanonAccount, p.Account},
		{CanonBankCode, p.BankCode}, {CanonReference, p.Reference}, {CanonDivision, p.Division},
		{CanonReasonCode, p.ReasonCode}, {CanonReasonText, p.ReasonText},
	} {
		if err := set(kv.k, kv.v); err != nil {
			return err
		}
	}
	if i := s.CanonicalIndex(CanonAmount); i >= 0 {
		if err := r.SetAt(i, p.AmountFen); err != nil {
			return err
		}
	}
	if err := set(CanonPeriod, p.Period); err != nil {
		return err
	}
	if i := s.CanonicalIndex(CanonPayDate); i >= 0 {
		if p.PayDate.IsZero() {
			r.Values[i] = Value{}
		} else if err := r.SetAt(i, p.PayDate); err != nil {
			return err
		}
	}
	if i := s.CanonicalIndex(CanonStatus); i >= 0 {
		f := &s.Fields[i]
		code := string(p.Status)
		if f.Codes != nil {
			if _, ok := f.Codes.Lookup(p.ReasonCode); ok && s.CanonicalIndex(CanonReasonCode) < 0 {
				code = p.ReasonCode
			} else if c, ok := f.Codes.CodeFor(string(p.Status)); ok {
				code = c
			} else if p.Status != StatusNone {
				return fmt.Errorf("%w: field %s: no code for status %q in %s", ErrField, f.Name, p.Status, f.Codes.Name)
			}
		}
		if err := r.setText(i, code); err != nil {
			return err
		}
	}
	return nil
}
