package mappings

import "errors"

// Sentinel errors, matched with errors.Is.
var (
	// ErrSpec reports an invalid layout, mapping or code table file.
	ErrSpec = errors.New("invalid mapping spec")
	// ErrField reports a field value that cannot be decoded, encoded or
	// does not pass a validator.
	ErrField = errors.New("invalid field")
	// ErrRecord reports a record that cannot be split into fields or whose
	// kind cannot be determined.
	ErrRecord = errors.New("invalid record")
	// ErrSplitMultibyte reports a multibyte character cut by a field
	// boundary (reading) or that would be cut by truncation (writing).
	ErrSplitMultibyte = errors.New("multibyte character split at field boundary")
	// ErrTooLong reports a value longer than its field.
	ErrTooLong = errors.New("value longer than field")
	// ErrEncode reports a character that the target charset cannot hold.
	ErrEncode = errors.New("character not representable in charset")
	// ErrTrailerMismatch reports a trailer (or summary header) whose count
	// or total differs from the details.
	ErrTrailerMismatch = errors.New("trailer does not match details")
	// ErrRecordTooLarge reports a line or JSON/XML record above the
	// reader's size limit.
	ErrRecordTooLarge = errors.New("record too large")
)

// ErrIncompleteReturn reports a return split over several files whose
// parts are missing, duplicated or disagree on the number of parts.
var ErrIncompleteReturn = errors.New("incomplete return file set")

// ErrCharset reports bytes that are not a valid sequence of the file's
// charset (GBK 81 7F, a stray UTF-8 continuation byte, ...). It comes
// wrapped with ErrField on a record's field, or alone from a JSON or XML
// source, always with the line it is on.
var ErrCharset = errors.New("invalid byte sequence for the charset")

// ErrRefused reports a file that may not be accepted as a whole (see
// Reader.Verdict): the cycle leaves it unreconciled, `mzhub map` writes no
// output for it. The reasons are wrapped beside it.
var ErrRefused = errors.New("file refused")
