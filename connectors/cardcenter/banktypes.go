package cardcenter

import (
	"fmt"
	"io/fs"
	"strings"

	"github.com/shanghai-mca/mzhub/mappings"
)

// DefaultBankTypes is the shipped bank-type dictionary, relative to the
// mappings directory (paths.mappings).
const DefaultBankTypes = "codetables/cardcenter-bank-types.yaml"

// BankTypes is the card center's bank-type dictionary (a mappings code
// table): the card center's code of the bank behind a social-security card
// → the partner bank (connector code) whose allowance file pays a 一卡通
// holder, and the bank's name.
type BankTypes struct {
	name string
	t    *mappings.CodeTable
}

// LoadBankTypes loads the dictionary at name (a path in fsys, the mappings
// directory). Every value must name a bank: a code table whose values are
// not connector codes (lower-case letters) is refused.
func LoadBankTypes(fsys fs.FS, name string) (*BankTypes, error) {
	t, err := mappings.NewLoader(fsys).CodeTable(name)
	if err != nil {
		return nil, fmt.Errorf("cardcenter: bank types: %w", err)
	}
	for _, e := range t.Entries {
		if e.Value == "" || strings.Trim(e.Value, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" || e.Value == e.Code {
			return nil, fmt.Errorf("cardcenter: bank types %s: code %q: value %q is not a bank's connector code", name, e.Code, e.Value)
		}
	}
	return &BankTypes{name: t.Name, t: t}, nil
}

// Bank returns the partner bank (connector code) and name of a card
// center bank-type code; ok is false for a code the dictionary lacks.
func (b *BankTypes) Bank(code string) (bank, name string, ok bool) {
	if b == nil {
		return "", "", false
	}
	e, ok := b.t.Lookup(code)
	if !ok {
		return "", "", false
	}
	return e.Value, e.Text, true
}

// Name is the dictionary's name (cardcenter-bank-types).
func (b *BankTypes) Name() string {
	if b == nil {
		return ""
	}
	return b.name
}
