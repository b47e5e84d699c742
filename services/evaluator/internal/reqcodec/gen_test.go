package reqcodec_test

import (
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// gen writes random JSON (valid or slightly broken) and random values for the
// differential tests.
type gen struct{ r *rand.Rand }

var tricky = []string{"", "a", "targetingKey", "région", "é", "\u2028", "<&>", "x\"y", "back\\slash",
	"tab\t", "nl\n", "\x00", "\x7f", "\xff", "\xed\xa0\x80", "😀", "context", "flagKey", "a.b", strings.Repeat("k", 300)}

func (g gen) str() string {
	if g.r.IntN(3) == 0 {
		return tricky[g.r.IntN(len(tricky))]
	}
	n := g.r.IntN(12)
	var b strings.Builder
	for range n {
		b.WriteByte(byte('a' + g.r.IntN(26)))
	}
	return b.String()
}

// quote writes s as a JSON string, sometimes escaping characters that need no
// escape, sometimes (rarely) an escaped surrogate or a raw control character.
func (g gen) quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 && g.r.IntN(20) != 0:
			b.WriteString(`\u00`)
			b.WriteString(strconv.FormatInt(int64(r)>>4, 16))
			b.WriteString(strconv.FormatInt(int64(r)&15, 16))
		case r < 0x10000 && g.r.IntN(8) == 0:
			b.WriteString(`\u`)
			h := strconv.FormatInt(int64(r), 16)
			if g.r.IntN(2) == 0 {
				h = strings.ToUpper(h)
			}
			b.WriteString(strings.Repeat("0", 4-len(h)) + h)
		default:
			b.WriteRune(r)
		}
	}
	switch g.r.IntN(60) {
	case 0:
		b.WriteString(`\ud83d\ude00`)
	case 1:
		b.WriteString(`\ud800`)
	case 2:
		b.WriteString(`\/\b\f\n\r\t`)
	}
	b.WriteByte('"')
	return b.String()
}

func (g gen) ws() string {
	if g.r.IntN(4) != 0 {
		return ""
	}
	return [...]string{" ", "\n", "\t", "\r\n  ", "  "}[g.r.IntN(5)]
}

func (g gen) number() string {
	switch g.r.IntN(12) {
	case 0:
		return "1e400"
	case 1:
		return "-0"
	case 2:
		return "1E-400"
	case 3:
		return "12345678901234567890123"
	case 4:
		return "0.1e+2"
	case 5:
		return strconv.FormatFloat(math.MaxFloat64, 'g', -1, 64)
	}
	f := g.r.NormFloat64() * math.Pow(10, float64(g.r.IntN(10)-3))
	if g.r.IntN(2) == 0 {
		f = math.Trunc(f)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// value writes a random JSON value nested at most depth more levels.
func (g gen) value(depth int) string {
	k := g.r.IntN(9)
	if depth <= 0 && k >= 7 {
		k = g.r.IntN(7)
	}
	switch k {
	case 0:
		return "null"
	case 1:
		return "true"
	case 2:
		return "false"
	case 3, 4:
		return g.number()
	case 5, 6:
		return g.quote(g.str())
	case 7:
		return g.object(depth-1, g.r.IntN(5))
	}
	n := g.r.IntN(5)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = g.ws() + g.value(depth-1) + g.ws()
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func (g gen) object(depth, n int) string {
	parts := make([]string, n)
	for i := range parts {
		key := g.str()
		if i > 0 && g.r.IntN(15) == 0 {
			key = "dup"
			parts[0] = g.quote("dup") + ":1"
		}
		parts[i] = g.ws() + g.quote(key) + g.ws() + ":" + g.ws() + g.value(depth) + g.ws()
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// mutate breaks s a little, now and then.
func (g gen) mutate(s string) string {
	if len(s) == 0 || g.r.IntN(3) != 0 {
		return s
	}
	b := []byte(s)
	i := g.r.IntN(len(b))
	switch g.r.IntN(5) {
	case 0:
		return string(b[:i])
	case 1:
		const set = "{}[],:\"\\ 0a-.eE\xff"
		b[i] = set[g.r.IntN(len(set))]
		return string(b)
	case 2:
		return string(b[:i]) + string(b[i+1:])
	case 3:
		return string(b[:i]) + [...]string{",", "}", "]", "null", `"`, "\\u"}[g.r.IntN(6)] + string(b[i:])
	}
	return s + [...]string{" ", "x", "{}", ","}[g.r.IntN(4)]
}
