package console

import "strings"

// EnglishNames returns the English side of every dictionary entry of more
// than one word, for the test that no zh-CN page shows one.
func EnglishNames() []string {
	var out []string
	for _, d := range []map[string][2]string{messages, partnerNames, flowNames, stageNames, errorNames, alertRuleNames,
		opNames, familyNames, accountOutcomeNames} {
		for _, v := range d {
			if len(v[1]) > 0 && containsSpace(v[1]) {
				out = append(out, v[1])
			}
		}
	}
	// The alert messages' English, between their parameters.
	for _, v := range alertMessageNames {
		for _, part := range messageParam.Split(v[1], -1) {
			if part = strings.Trim(part, " :,.()%"); containsSpace(part) {
				out = append(out, part)
			}
		}
	}
	return out
}

func containsSpace(s string) bool {
	for _, r := range s {
		if r == ' ' {
			return true
		}
	}
	return false
}

// AlertMessageNames returns the alert message dictionary (zh-CN, English).
func AlertMessageNames() map[string][2]string { return alertMessageNames }
