package mappings

import "fmt"

// CodeTable is a compiled dictionary.
type CodeTable struct {
	// Name is the table name.
	Name string
	// Entries are the entries in file order.
	Entries []CodeSpec
	byCode  map[string]int
	byValue map[string]int
}

// Lookup returns the entry of a file code.
func (c *CodeTable) Lookup(code string) (CodeSpec, bool) {
	i, ok := c.byCode[code]
	if !ok {
		return CodeSpec{}, false
	}
	return c.Entries[i], true
}

// has reports whether code is in the table; small tables are scanned,
// which is faster than hashing.
func (c *CodeTable) has(code string) bool {
	if len(c.Entries) <= 8 {
		for i := range c.Entries {
			if c.Entries[i].Code == code {
				return true
			}
		}
		return false
	}
	_, ok := c.byCode[code]
	return ok
}

// CodeFor returns the first file code whose hub value is value.
func (c *CodeTable) CodeFor(value string) (string, bool) {
	i, ok := c.byValue[value]
	if !ok {
		return "", false
	}
	return c.Entries[i].Code, true
}

func compileCodeTable(spec *CodeTableSpec, lines func(path ...any) int) (*CodeTable, []Problem) {
	var probs []Problem
	if spec.Kind != "codetable" {
		probs = append(probs, Problem{lines("kind"), fmt.Sprintf("kind is %q, want codetable", spec.Kind)})
	}
	ct := &CodeTable{Name: spec.Name, byCode: map[string]int{}, byValue: map[string]int{}}
	for i, e := range spec.Codes {
		if e.Value == "" {
			e.Value = e.Code
		}
		if _, dup := ct.byCode[e.Code]; dup {
			probs = append(probs, Problem{lines("codes", i), fmt.Sprintf("duplicate code %q", e.Code)})
			continue
		}
		ct.byCode[e.Code] = len(ct.Entries)
		if _, ok := ct.byValue[e.Value]; !ok {
			ct.byValue[e.Value] = len(ct.Entries)
		}
		ct.Entries = append(ct.Entries, e)
	}
	if len(ct.Entries) == 0 {
		probs = append(probs, Problem{lines("codes"), "code table has no codes"})
	}
	return ct, probs
}
