// Package synth generates realistic synthetic allowance lists: persons
// with valid GB 11643 ID numbers (Shanghai division codes 310101-310151,
// born 1925-1961, correct check digit), Chinese names, Luhn-valid accounts
// at the six partner banks and the allowance amount of their age band.
// Output is deterministic for a seed.
package synth

import (
	"math/rand/v2"
	"strconv"
	"time"
)

// Divisions are the Shanghai district codes in use (310101 … 310151).
var Divisions = []string{"310101", "310104", "310105", "310106", "310107", "310109", "310110",
	"310112", "310113", "310114", "310115", "310116", "310117", "310118", "310120", "310151"}

// Banks are the partner bank codes (connector codes) and their CNAPS codes.
var Banks = []struct{ Code, CNAPS, BIN string }{
	{"boc", "104", "621661"}, {"bocom", "301", "622262"}, {"ceb", "303", "622660"},
	{"cmb", "308", "621483"}, {"spdb", "310", "622521"}, {"ccb", "105", "621700"},
}

var surnames = []rune("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
var given = []rune("伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰萍红建国建华淑珍凤英德明志强海燕文玉梅国庆金凤桂兰建平")

// Person is one synthetic recipient.
type Person struct {
	ID, Name, Account, Division string
	// Bank indexes Banks.
	Bank int
	// AmountFen is the monthly allowance.
	AmountFen int64
	// Standard is the allowance standard (age band) code.
	Standard string
}

// Generator yields persons.
type Generator struct {
	r *rand.Rand
	n int
}

// New returns a generator for seed.
func New(seed uint64) *Generator { return &Generator{r: rand.New(rand.NewPCG(seed, 0x6d7a687562))} }

// Next returns the next person.
func (g *Generator) Next() Person {
	r := g.r
	// ID numbers are unique for the first 216 million persons: division
	// and birth date change with every person, the sequence code with every
	// 216,000 (16 divisions x 13,500 birth dates).
	combo := g.n % (len(Divisions) * 13500)
	seq := g.n / (len(Divisions) * 13500) % 1000
	g.n++
	div := Divisions[combo%len(Divisions)]
	birth := time.Date(1925, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, (combo/len(Divisions))*7919%13500)
	year, month, day := birth.Year(), int(birth.Month()), birth.Day()
	id := make([]byte, 0, 18)
	id = append(id, div...)
	id = strconv.AppendInt(id, int64(year), 10)
	id = append(id, byte('0'+month/10), byte('0'+month%10), byte('0'+day/10), byte('0'+day%10))
	id = append(id, byte('0'+seq/100), byte('0'+seq/10%10), byte('0'+seq%10))
	id = append(id, CheckDigit(id))
	b := r.IntN(len(Banks))
	acct := make([]byte, 0, 19)
	acct = append(acct, Banks[b].BIN...)
	for len(acct) < 18 {
		acct = append(acct, byte('0'+r.IntN(10)))
	}
	acct = append(acct, luhnDigit(acct))
	name := []rune{surnames[r.IntN(len(surnames))], given[r.IntN(len(given))]}
	if r.IntN(2) == 0 {
		name = append(name, given[r.IntN(len(given))])
	}
	age := 2026 - year
	amount, std := int64(7500), "A65"
	switch {
	case age >= 90:
		amount, std = 60000, "A90"
	case age >= 80:
		amount, std = 30000, "A80"
	case age >= 70:
		amount, std = 15000, "A70"
	}
	return Person{ID: string(id), Name: string(name), Account: string(acct), Division: div, Bank: b, AmountFen: amount, Standard: std}
}

var weights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

// CheckDigit computes the GB 11643 check character of the first 17 digits.
func CheckDigit(id17 []byte) byte {
	s := 0
	for i := range 17 {
		s += int(id17[i]-'0') * weights[i]
	}
	return "10X98765432"[s%11]
}

// ValidID tells whether an 18-character ID has a correct check digit.
func ValidID(id string) bool {
	if len(id) != 18 {
		return false
	}
	for i := range 17 {
		if id[i] < '0' || id[i] > '9' {
			return false
		}
	}
	return CheckDigit([]byte(id)) == id[17]
}

func luhnDigit(payload []byte) byte {
	s := 0
	double := true
	for i := len(payload) - 1; i >= 0; i-- {
		d := int(payload[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		s += d
		double = !double
	}
	return byte('0' + (10-s%10)%10)
}
