package semver

import "testing"

func TestParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in string
		ok bool
	}{
		{"1.2.3", true},
		{"0.0.0", true},
		{"v1.2.3", true},
		{"V1.2.3", true},
		{"1.2", true},
		{"1", true},
		{"1.2.3-alpha", true},
		{"1.2.3-alpha.1", true},
		{"1.2.3-0.3.7", true},
		{"1.2.3-x.7.z.92", true},
		{"1.2.3-x-y-z.--", true},
		{"1.2.3+build.1", true},
		{"1.2.3-rc.1+build.5", true},
		{"1.2.3+001", true},
		{"123456789012345678901234567890.0.0", true},
		{"", false},
		{"v", false},
		{"vv1.2.3", false},
		{"1.2.3.4", false},
		{"1-2-3", false},
		{"01.2.3", false},
		{"1.02.3", false},
		{"1.2.03", false},
		{"1.2.3-01", false},
		{"1.2.3-", false},
		{"1.2.3+", false},
		{"1.2.3-a..b", false},
		{"1.2.3-a_b", false},
		{"1.2-beta", false},
		{"1.2+build", false},
		{" 1.2.3", false},
		{"1.2.3 ", false},
		{"1.", false},
		{"1.2.", false},
		{".1.2", false},
		{"a.b.c", false},
		{"-1.2.3", false},
	}
	for _, tt := range tests {
		if _, ok := Parse(tt.in); ok != tt.ok {
			t.Errorf("Parse(%q) ok = %v, want %v", tt.in, ok, tt.ok)
		}
	}
}

func TestCompare(t *testing.T) {
	t.Parallel()
	// Each version has lower precedence than the next (semver.org, item 11).
	ordered := []string{
		"1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
		"1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "1.10.0", "2.0.0",
		"10.0.0", "99999999999999999999.0.0",
	}
	for i := range ordered {
		for j := range ordered {
			a, _ := Parse(ordered[i])
			b, _ := Parse(ordered[j])
			want := 0
			switch {
			case i < j:
				want = -1
			case i > j:
				want = 1
			}
			if got := Compare(a, b); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
	equal := [][2]string{
		{"1.2", "1.2.0"}, {"1", "1.0.0"}, {"v1.2.3", "1.2.3"}, {"1.2.3+a", "1.2.3+b"},
		{"1.2.3-rc.1+x", "1.2.3-rc.1"},
	}
	for _, e := range equal {
		a, _ := Parse(e[0])
		b, _ := Parse(e[1])
		if Compare(a, b) != 0 {
			t.Errorf("Compare(%s, %s) != 0", e[0], e[1])
		}
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	allocs := testing.AllocsPerRun(100, func() {
		a, _ := Parse("v1.2.3-rc.1+build")
		b, _ := Parse("1.2.3-rc.2")
		_ = Compare(a, b)
	})
	if allocs != 0 {
		t.Errorf("%v allocations, want 0", allocs)
	}
}
