// Package semver parses and compares Semantic Versioning 2.0.0 versions with the
// leniencies of design/EVALUATION.md: one leading "v" or "V", and partial versions
// "1" and "1.2" meaning 1.0.0 and 1.2.0 (a partial version carries no pre-release or
// build metadata). Build metadata is accepted and ignored for precedence. Anything
// else ("1.2.3.4", "1-2-3", leading zeros, empty identifiers, spaces) is invalid.
//
// Parsing does not allocate: a Version refers to substrings of the parsed text, and
// numeric identifiers of any length compare exactly (no integer overflow).
package semver

// Version is a parsed version. The zero value is not a valid version; obtain one with
// Parse.
type Version struct {
	major, minor, patch string
	// pre is the pre-release part without the leading '-', "" when absent.
	pre string
}

// Parse parses s. ok is false when s is not a valid version.
func Parse(s string) (v Version, ok bool) {
	if len(s) > 0 && (s[0] == 'v' || s[0] == 'V') {
		s = s[1:]
	}
	var rest string
	if v.major, rest, ok = numeric(s); !ok {
		return Version{}, false
	}
	if rest == "" {
		v.minor, v.patch = "0", "0"
		return v, true
	}
	if rest[0] != '.' {
		return Version{}, false
	}
	if v.minor, rest, ok = numeric(rest[1:]); !ok {
		return Version{}, false
	}
	if rest == "" {
		v.patch = "0"
		return v, true
	}
	if rest[0] != '.' {
		return Version{}, false
	}
	if v.patch, rest, ok = numeric(rest[1:]); !ok {
		return Version{}, false
	}
	if rest != "" && rest[0] == '-' {
		end := len(rest)
		for i := 1; i < len(rest); i++ {
			if rest[i] == '+' {
				end = i
				break
			}
		}
		v.pre = rest[1:end]
		if !identifiers(v.pre, true) {
			return Version{}, false
		}
		rest = rest[end:]
	}
	if rest != "" {
		if rest[0] != '+' || !identifiers(rest[1:], false) {
			return Version{}, false
		}
	}
	return v, true
}

// numeric reads a numeric identifier (no leading zero unless it is "0") at the
// start of s.
func numeric(s string) (num, rest string, ok bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || (i > 1 && s[0] == '0') {
		return "", "", false
	}
	return s[:i], s[i:], true
}

// identifiers reports whether s is a non-empty dot-separated list of non-empty
// [0-9A-Za-z-] identifiers; for a pre-release, numeric identifiers must not have
// leading zeros.
func identifiers(s string, pre bool) bool {
	if s == "" {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			if !identChar(s[i]) {
				return false
			}
			continue
		}
		id := s[start:i]
		if id == "" {
			return false
		}
		if pre && allDigits(id) && len(id) > 1 && id[0] == '0' {
			return false
		}
		start = i + 1
	}
	return true
}

// identChar reports whether c may appear in a pre-release or build identifier.
func identChar(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-'
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// compareNumeric compares two numeric identifiers without leading zeros.
func compareNumeric(a, b string) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Compare returns -1, 0 or +1 as a has lower, equal or higher precedence than b.
func Compare(a, b Version) int {
	if c := compareNumeric(a.major, b.major); c != 0 {
		return c
	}
	if c := compareNumeric(a.minor, b.minor); c != 0 {
		return c
	}
	if c := compareNumeric(a.patch, b.patch); c != 0 {
		return c
	}
	switch {
	case a.pre == b.pre:
		return 0
	case a.pre == "":
		return 1
	case b.pre == "":
		return -1
	}
	x, y := a.pre, b.pre
	for {
		if x == "" || y == "" {
			switch {
			case x == "" && y == "":
				return 0
			case x == "":
				return -1
			}
			return 1
		}
		var ix, iy string
		ix, x = next(x)
		iy, y = next(y)
		if c := compareIdentifier(ix, iy); c != 0 {
			return c
		}
	}
}

// next splits the first dot-separated identifier off s.
func next(s string) (id, rest string) {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func compareIdentifier(a, b string) int {
	na, nb := allDigits(a), allDigits(b)
	switch {
	case na && nb:
		return compareNumeric(a, b)
	case na:
		return -1
	case nb:
		return 1
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
