package householdsim

import (
	"fmt"

	"github.com/shanghai-mca/mzhub/connectors/household"
)

var idWeights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

// ID returns a valid resident ID number (GB 11643 check digit) for a
// division code (six digits, e.g. "310104"), a birth date (YYYYMMDD) and
// a sequence number.
func ID(division, birth string, seq int) string {
	s := fmt.Sprintf("%s%s%03d", division, birth, seq%1000)
	sum := 0
	for i := range 17 {
		sum += int(s[i]-'0') * idWeights[i]
	}
	return s + string("10X98765432"[sum%11])
}

var surnames = []string{"张", "王", "李", "赵", "陈", "刘", "杨", "黄", "周", "吴"}
var given = []string{"伟", "芳", "娜", "敏", "静", "强", "磊", "洋", "艳", "军"}

// Household returns the members of synthetic household n: two to four
// persons registered in Shanghai; when nonLocal, the spouse is registered
// in another province (asked through the ministry platform).
func Household(n int, nonLocal bool) []household.Member {
	size := 2 + n%3
	districts := []string{"310101", "310104", "310105", "310106", "310107", "310109", "310110", "310112", "310113", "310115"}
	div := districts[n%len(districts)]
	var out []household.Member
	for i := range size {
		d, rel, birth := div, "self", fmt.Sprintf("19%02d%02d%02d", 50+(n+i*7)%40, 1+(n+i)%12, 1+(n*3+i)%28)
		switch i {
		case 1:
			rel = "spouse"
			if nonLocal {
				d = []string{"320102", "330106", "340104", "410105"}[n%4]
			}
		case 2, 3:
			rel, birth = "child", fmt.Sprintf("20%02d%02d%02d", (n+i)%20, 1+(n+i)%12, 1+(n+i*5)%28)
		}
		out = append(out, household.Member{Name: surnames[(n+i)%10] + given[(n*7+i)%10], IDNumber: ID(d, birth, n*4+i), Relation: rel})
	}
	return out
}
