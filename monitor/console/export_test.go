package console

// EnglishNames returns the English side of every dictionary entry of more
// than one word, for the test that no zh-CN page shows one.
func EnglishNames() []string {
	var out []string
	for _, d := range []map[string][2]string{messages, partnerNames, flowNames, stageNames, errorNames, alertRuleNames,
		opNames, familyNames} {
		for _, v := range d {
			if len(v[1]) > 0 && containsSpace(v[1]) {
				out = append(out, v[1])
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
