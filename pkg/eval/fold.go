package eval

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Case-insensitive comparisons use Unicode simple case folding, rune by rune, as
// strings.EqualFold does (docs/evaluation.md). None of them allocates.

// equalFoldRune reports whether a and b are in the same simple-folding orbit.
func equalFoldRune(a, b rune) bool {
	if a == b {
		return true
	}
	if a < utf8.RuneSelf && b < utf8.RuneSelf {
		if 'A' <= a && a <= 'Z' {
			a += 'a' - 'A'
		}
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		return a == b && a >= 'a' && a <= 'z'
	}
	for r := unicode.SimpleFold(a); r != a; r = unicode.SimpleFold(r) {
		if r == b {
			return true
		}
	}
	return false
}

// hasPrefixFold is strings.HasPrefix under simple case folding.
func hasPrefixFold(s, prefix string) bool {
	for prefix != "" {
		if s == "" {
			return false
		}
		r1, n1 := utf8.DecodeRuneInString(s)
		r2, n2 := utf8.DecodeRuneInString(prefix)
		if !equalFoldRune(r1, r2) {
			return false
		}
		s, prefix = s[n1:], prefix[n2:]
	}
	return true
}

// hasSuffixFold is strings.HasSuffix under simple case folding.
func hasSuffixFold(s, suffix string) bool {
	for suffix != "" {
		if s == "" {
			return false
		}
		r1, n1 := utf8.DecodeLastRuneInString(s)
		r2, n2 := utf8.DecodeLastRuneInString(suffix)
		if !equalFoldRune(r1, r2) {
			return false
		}
		s, suffix = s[:len(s)-n1], suffix[:len(suffix)-n2]
	}
	return true
}

// containsFold is strings.Contains under simple case folding.
func containsFold(s, sub string) bool {
	for {
		if hasPrefixFold(s, sub) {
			return true
		}
		if s == "" {
			return false
		}
		_, n := utf8.DecodeRuneInString(s)
		s = s[n:]
	}
}

// foldKey maps s to a canonical representative of its case-folding class, so that
// foldKey(a) == foldKey(b) exactly when strings.EqualFold(a, b). It returns s itself
// (no allocation) when s is ASCII without upper-case letters.
func foldKey(s string) string {
	simple := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') {
			simple = false
			break
		}
	}
	if simple {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		b.WriteRune(canonicalRune(r))
	}
	return b.String()
}

// canonicalRune picks one member of r's folding orbit: the ASCII lower-case letter
// when the orbit has one (so plain lower-case ASCII maps to itself), else the
// smallest member.
func canonicalRune(r rune) rune {
	best := r
	for x := unicode.SimpleFold(r); x != r; x = unicode.SimpleFold(x) {
		if 'a' <= x && x <= 'z' {
			return x
		}
		if x < best {
			best = x
		}
	}
	if 'a' <= r && r <= 'z' {
		return r
	}
	return best
}
