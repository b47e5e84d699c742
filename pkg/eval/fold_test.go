package eval

import (
	"strings"
	"testing"
)

func TestFoldComparisonsAgreeWithEqualFold(t *testing.T) {
	t.Parallel()
	words := []string{
		"", "a", "A", "abc", "ABC", "aBc", "k", "K", "\u212a", "s", "S", "\u017f", "straße",
		"STRASSE", "Straße", "ǅ", "ǆ", "Ǆ", "σ", "Σ", "ς", "\xff", "\xfe", "\ufffd", "ÿ", "Ÿ",
		"İ", "i", "ı", "Ω", "ω", "\u2126", "ⓐ", "Ⓐ",
	}
	for _, a := range words {
		for _, b := range words {
			eq := strings.EqualFold(a, b)
			if got := foldKey(a) == foldKey(b); got != eq {
				t.Errorf("foldKey(%q)==foldKey(%q) is %v, EqualFold %v", a, b, got, eq)
			}
			if eq {
				if !hasPrefixFold(a+"xyz", b) || !hasSuffixFold("xyz"+a, b) || !containsFold("xy"+a+"z", b) {
					t.Errorf("%q and %q fold-equal but prefix/suffix/contains disagree", a, b)
				}
			}
		}
	}
}

func TestFoldHelpers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		fn        string
		s, x      string
		want, std bool // want: folded result; std: the case-sensitive result
	}{
		{"prefix", "Hello World", "hello", true, false},
		{"prefix", "Hello", "Hello World", false, false},
		{"prefix", "\u212aelvin", "kel", true, false},
		{"prefix", "anything", "", true, true},
		{"suffix", "user@EXAMPLE.com", "@example.COM", true, false},
		{"suffix", "com", "example.com", false, false},
		{"contains", "The Quick Brown", "QUICK", true, false},
		{"contains", "abc", "abd", false, false},
		{"contains", "", "", true, true},
		{"contains", "ſtop", "STOP", true, false},
	}
	for _, tt := range tests {
		var got, std bool
		switch tt.fn {
		case "prefix":
			got, std = hasPrefixFold(tt.s, tt.x), strings.HasPrefix(tt.s, tt.x)
		case "suffix":
			got, std = hasSuffixFold(tt.s, tt.x), strings.HasSuffix(tt.s, tt.x)
		case "contains":
			got, std = containsFold(tt.s, tt.x), strings.Contains(tt.s, tt.x)
		}
		if got != tt.want || std != tt.std {
			t.Errorf("%s(%q, %q) = %v (case-sensitive %v), want %v (%v)", tt.fn, tt.s, tt.x, got, std, tt.want, tt.std)
		}
	}
}

func TestFoldKeyKeepsLowerASCII(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() { _ = foldKey("already-lower-case@example.com") })
	if allocs != 0 {
		t.Errorf("foldKey allocates %v times for lower-case ASCII", allocs)
	}
}
