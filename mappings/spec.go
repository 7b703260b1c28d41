package mappings

// The YAML file formats. Every struct is decoded strictly: an unknown key
// is an error reported with its file and line.

// FileHeader is the part shared by every mapping-engine YAML file.
type FileHeader struct {
	// Kind is layout, mapping or codetable.
	Kind string `yaml:"kind"`
	// Name identifies the file in messages and catalogs.
	Name string `yaml:"name"`
	// Description says what the file is for (free text, may be Chinese).
	Description string `yaml:"description"`
}

// LayoutSpec describes one partner file format.
type LayoutSpec struct {
	FileHeader `yaml:",inline"`
	// Format is fixed, delimited, json or xml.
	Format string `yaml:"format"`
	// Charset is GBK, GB18030 or UTF-8 (default UTF-8). Fixed-width
	// positions and widths count bytes of this charset.
	Charset string `yaml:"charset"`
	// LineEnding is CRLF or LF (default LF); readers accept both.
	LineEnding string `yaml:"line_ending"`
	// Separator splits the fields of a delimited record, e.g. "|" or ",".
	Separator string `yaml:"separator"`
	// Quote is the quote character of a delimited file ("" for none).
	// Quoted fields may contain the separator and doubled quotes, but not
	// line breaks.
	Quote string `yaml:"quote"`
	// TrailingSeparator, for delimited files, ends every line with the
	// separator ("a|b|c|").
	TrailingSeparator bool `yaml:"trailing_separator"`
	// HeaderRow, for delimited files, means the first line holds the
	// detail field names.
	HeaderRow bool `yaml:"header_row"`
	// JSONStyle is array (one top-level array of objects) or lines (one
	// object per line); default lines.
	JSONStyle string `yaml:"json_style"`
	// Root is the XML root element.
	Root string `yaml:"root"`
	// Match says how return records are matched to the sent records:
	// line (by order) or reference (by the field with canonical
	// reference; files may come in several parts). Default line.
	Match string `yaml:"match"`
	// Records lists the record kinds: at most one header, exactly one
	// detail, at most one trailer.
	Records []RecordSpec `yaml:"records"`
}

// RecordSpec describes one record kind.
type RecordSpec struct {
	// Kind is header, detail or trailer.
	Kind string `yaml:"kind"`
	// Select says how a line is recognised as this kind.
	Select SelectSpec `yaml:"select"`
	// Element is the XML element (or JSON "type" value, see SelectSpec)
	// holding one record of this kind.
	Element string `yaml:"element"`
	// Length is the exact byte length of a fixed-width line (0: the sum
	// of the widths). Lint checks that the widths add up to it.
	Length int `yaml:"length"`
	// Fields are the record's fields in file order.
	Fields []FieldSpec `yaml:"fields"`
}

// SelectSpec selects the record kind of a line. With none set, header and
// trailer default to the first and last line and detail to the rest.
type SelectSpec struct {
	// Position is first or last.
	Position string `yaml:"position"`
	// Prefix is the bytes the line starts with (in the file charset).
	Prefix string `yaml:"prefix"`
	// Field names a discriminator field of this record whose raw text
	// must equal Equals.
	Field string `yaml:"field"`
	// Equals is the discriminator value.
	Equals string `yaml:"equals"`
}

// FieldSpec describes one field.
type FieldSpec struct {
	// Name is the field name, unique within the record.
	Name string `yaml:"name"`
	// Type is string, integer, amount, date, time, datetime, enum or
	// constant.
	Type string `yaml:"type"`
	// Width is the field width in bytes of the charset (fixed-width only).
	Width int `yaml:"width"`
	// Start is the 1-based byte position of the field (fixed-width only,
	// optional). When given it must follow the previous field exactly;
	// lint reports overlaps and gaps.
	Start int `yaml:"start"`
	// Align is left (default for text) or right (default for numbers).
	Align string `yaml:"align"`
	// Pad is the pad character: default space for text, "0" for right
	// aligned numbers in fixed-width files.
	Pad string `yaml:"pad"`
	// NoTrim keeps pad characters when reading.
	NoTrim bool `yaml:"no_trim"`
	// Unit is yuan (text with two decimals) or fen (integer) for amounts.
	Unit string `yaml:"unit"`
	// Layout is the Go time layout of a date/time field, e.g. 20060102.
	Layout string `yaml:"layout"`
	// Codes is the path of the code table of an enum field, relative to
	// this file.
	Codes string `yaml:"codes"`
	// Value is the text of a constant field.
	Value string `yaml:"value"`
	// Default is the file text written when the record leaves the field
	// blank (e.g. an ID type "01" or a memo).
	Default string `yaml:"default"`
	// Key is the JSON key or XML element name (default Name).
	Key string `yaml:"key"`
	// Required rejects a record with this field blank.
	Required bool `yaml:"required"`
	// MinLen and MaxLen bound the length in characters.
	MinLen int `yaml:"min_len"`
	// MaxLen: see MinLen.
	MaxLen int `yaml:"max_len"`
	// Pattern is a regular expression the whole text must match.
	Pattern string `yaml:"pattern"`
	// Min and Max bound an integer or an amount (in fen).
	Min *int64 `yaml:"min"`
	// Max: see Min.
	Max *int64 `yaml:"max"`
	// Check is a named validator: gb11643 (resident ID check digit and
	// birth date), luhn (card number, a warning only) or division
	// (Shanghai division code 310101-310151).
	Check string `yaml:"check"`
	// Sensitive is id, account, phone or name: the value is masked in
	// every message.
	Sensitive string `yaml:"sensitive"`
	// Canonical names the canonical payment field the value carries (see
	// docs/canonical-payment.md).
	Canonical string `yaml:"canonical"`
	// Aggregate is count or sum for a trailer or summary-header field:
	// computed when writing, checked when reading; or sequence for a
	// detail field numbered 1, 2, ... by the writer.
	Aggregate string `yaml:"aggregate"`
	// Of names the detail amount field summed by Aggregate sum.
	Of string `yaml:"of"`
	// Expr computes the field from the other fields of the same record
	// (expr-lang; amounts in fen): filled when writing, checked when
	// reading.
	Expr string `yaml:"expr"`
	// When makes the field conditional: when the expression is false the
	// writer leaves it blank.
	When string `yaml:"when"`
	// Truncate lets the writer cut a too-long text value at a character
	// boundary (reported as a warning) instead of rejecting the record.
	Truncate bool `yaml:"truncate"`
}

// MappingSpec converts records of a source layout into a target layout.
type MappingSpec struct {
	FileHeader `yaml:",inline"`
	// Source is the path of the source layout, relative to this file.
	Source string `yaml:"source"`
	// Target is the path of the target layout, relative to this file.
	Target string `yaml:"target"`
	// ByCanonical fills every target field not named in Rules from the
	// source field carrying the same canonical name, then the same name.
	ByCanonical bool `yaml:"by_canonical"`
	// Filter is an expression over the source detail; records for which
	// it is false are skipped (not rejected).
	Filter string `yaml:"filter"`
	// Header rules fill the target header; expressions see the params.
	Header []RuleSpec `yaml:"header"`
	// Detail rules fill the target detail from the source detail.
	Detail []RuleSpec `yaml:"detail"`
	// Params are default values of the parameters passed on the command
	// line (--param key=value), visible to expressions as params.key.
	Params map[string]string `yaml:"params"`
	// Tests are examples run by `mzhub test` and the package tests: the
	// source sample converts to the expected target file.
	Tests []MappingTestSpec `yaml:"tests"`
}

// RuleSpec fills one target field.
type RuleSpec struct {
	// Target is the target field name.
	Target string `yaml:"target"`
	// From is the source field name to copy (converted to the target
	// type).
	From string `yaml:"from"`
	// Expr is an expr-lang expression computing the value; source fields
	// are variables, params.x the parameters.
	Expr string `yaml:"expr"`
	// Value is a constant text.
	Value string `yaml:"value"`
	// When is a condition; if false the field is left blank.
	When string `yaml:"when"`
}

// MappingTestSpec is one example conversion.
type MappingTestSpec struct {
	// Input is the source sample, relative to the mapping file.
	Input string `yaml:"input"`
	// Expect is the expected output, relative to the mapping file.
	Expect string `yaml:"expect"`
	// Params override the mapping's params for this test.
	Params map[string]string `yaml:"params"`
}

// CodeTableSpec is a dictionary: file codes to hub values.
type CodeTableSpec struct {
	FileHeader `yaml:",inline"`
	// Codes lists the entries.
	Codes []CodeSpec `yaml:"codes"`
}

// CodeSpec is one code table entry.
type CodeSpec struct {
	// Code is the text in the partner file.
	Code string `yaml:"code"`
	// Value is the hub's value for the code (e.g. paid/failed); default
	// the code itself.
	Value string `yaml:"value"`
	// Text is a human description.
	Text string `yaml:"text"`
}
