package verification

import "errors"

// Sentinel errors.
var (
	// ErrNotFound is an unknown request or call.
	ErrNotFound = errors.New("verification: not found")
	// ErrInvalid is a request that fails validation (see *InvalidError).
	ErrInvalid = errors.New("verification: invalid request")
	// ErrNotUnderReview is a review of a call that awaits none.
	ErrNotUnderReview = errors.New("verification: call is not awaiting review")
)

// FieldError is one problem with one field of a request.
type FieldError struct {
	// Field is the JSON path ("members[1].id_number").
	Field string
	// Reason says what is wrong without echoing the value.
	Reason string
}

// InvalidError lists every problem of a request.
type InvalidError struct {
	// Fields are the problems.
	Fields []FieldError
}

func (e *InvalidError) Error() string {
	s := "verification: invalid request:"
	for _, f := range e.Fields {
		s += " " + f.Field + ": " + f.Reason + ";"
	}
	return s
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *InvalidError) Unwrap() error { return ErrInvalid }
