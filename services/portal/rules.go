package portal

import (
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
)

var itemCodeRE = regexp.MustCompile(`^[A-Z][A-Z0-9-]{1,31}$`)

// Qualification is what an item's qualification rule sees of a person
// (the expression's variables are the expr tags).
type Qualification struct {
	// Age is the person's age in whole years on the first day of the month looked at.
	Age int `expr:"age"`
	// Hukou is "shanghai" or "other".
	Hukou string `expr:"hukou"`
	// Status is normal, deceased, moved_out or suspended.
	Status string `expr:"status"`
	// Division is the district's division code.
	Division string `expr:"division"`
	// DisabilityGrade is 1..4, 0 for none.
	DisabilityGrade int `expr:"disability_grade"`
	// HouseholdSize counts the household's members.
	HouseholdSize int `expr:"household_size"`
	// MonthlyIncomeFen is the household's monthly income in fen.
	MonthlyIncomeFen int64 `expr:"monthly_income_fen"`
	// AssistanceType is dibao (低保), tekun (特困), dibian (低收入) or "".
	AssistanceType string `expr:"assistance_type"`
}

type compiledItem struct {
	Item
	rule *vm.Program
}

func compileItems(items []Item) (map[string]*compiledItem, error) {
	out := make(map[string]*compiledItem, len(items))
	for _, it := range items {
		c := &compiledItem{Item: it}
		if it.Rule != "" {
			p, err := expr.Compile(it.Rule, expr.Env(Qualification{}), expr.AsBool())
			if err != nil {
				return nil, fmt.Errorf("portal: item %s: rule: %w", it.Code, err)
			}
			c.rule = p
		}
		out[it.Code] = c
	}
	return out, nil
}

// qualifies runs the item's rule; no rule qualifies everyone.
func (c *compiledItem) qualifies(env Qualification) (bool, error) {
	if c.rule == nil {
		return true, nil
	}
	v, err := expr.Run(c.rule, env)
	if err != nil {
		return false, fmt.Errorf("item %s: rule: %w", c.Code, err)
	}
	ok, _ := v.(bool)
	return ok, nil
}

// ageOn returns the age in whole years at t of the holder of a valid ID
// number (birth date in digits 7-14), -1 when it cannot be read.
func ageOn(id string, t time.Time) int {
	if len(id) != 18 {
		return -1
	}
	y, e1 := strconv.Atoi(id[6:10])
	m, e2 := strconv.Atoi(id[10:12])
	d, e3 := strconv.Atoi(id[12:14])
	if e1 != nil || e2 != nil || e3 != nil {
		return -1
	}
	age := t.Year() - y
	if int(t.Month()) < m || (int(t.Month()) == m && t.Day() < d) {
		age--
	}
	return age
}
