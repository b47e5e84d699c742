package eval

import (
	"testing"
)

type operatorCase struct {
	name   string
	clause string
	ctx    map[string]any
	want   bool
}

// runOperatorCases evaluates each clause in a one-rule flag and checks whether the
// rule matched.
func runOperatorCases(t *testing.T, segments string, cases []operatorCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := compileJSON(t, clauseManifest(tc.clause, segments))
			if msg := m.FlagError("f"); msg != "" {
				t.Fatalf("flag does not compile: %s", msg)
			}
			r := m.Evaluate("f", mustContext(t, tc.ctx), Bool, nil)
			var got bool
			switch {
			case r.Reason == ReasonTargetingMatch && r.RuleID == "r1" && r.Value == true:
				got = true
			case r.Reason == ReasonDefault && r.Value == false:
			default:
				t.Fatalf("unexpected result %+v", r)
			}
			if got != tc.want {
				t.Errorf("matched = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestOperatorIn(t *testing.T) {
	t.Parallel()
	in := func(vals string, extra string) string {
		return `{"attribute":"a","operator":"OPERATOR_IN","values":` + vals + extra + `}`
	}
	many := `["v0","v1","v2","v3","v4","v5","v6","v7","v8","Straße","\u212aelvin"]`
	runOperatorCases(t, "", []operatorCase{
		{"equal string matches", in(`["x","y"]`, ""), map[string]any{"a": "y"}, true},
		{"string equality is case-sensitive", in(`["x"]`, ""), map[string]any{"a": "X"}, false},
		{"caseInsensitive folds case", in(`["x"]`, `,"caseInsensitive":true`), map[string]any{"a": "X"}, true},
		{"numbers compare numerically", in(`[1]`, ""), map[string]any{"a": 1.0}, true},
		{"string attribute does not equal a number", in(`[42]`, ""), map[string]any{"a": "42"}, false},
		{"number attribute does not equal a string", in(`["42"]`, ""), map[string]any{"a": 42}, false},
		{"booleans equal booleans", in(`[true]`, ""), map[string]any{"a": true}, true},
		{"false is not true", in(`[true]`, ""), map[string]any{"a": false}, false},
		{"bool does not equal the string true", in(`["true"]`, ""), map[string]any{"a": true}, false},
		{"any list element matches", in(`["x"]`, ""), map[string]any{"a": []any{"q", "x"}}, true},
		{"no list element matches", in(`["x"]`, ""), map[string]any{"a": []any{"q"}}, false},
		{"negate inverts a present attribute", in(`["x"]`, `,"negate":true`), map[string]any{"a": "y"}, true},
		{"negate of a match is no match", in(`["x"]`, `,"negate":true`), map[string]any{"a": "x"}, false},
		{"missing attribute never matches", in(`["x"]`, ""), map[string]any{}, false},
		{"missing attribute never matches negated", in(`["x"]`, `,"negate":true`), map[string]any{}, false},
		{"null attribute never matches negated", in(`["x"]`, `,"negate":true`), map[string]any{"a": nil}, false},
		{"object attribute matches nothing", in(`["x"]`, ""), map[string]any{"a": map[string]any{"x": "x"}}, false},
		{"large set matches", in(many, ""), map[string]any{"a": "v8"}, true},
		{"large set misses", in(many, ""), map[string]any{"a": "V8"}, false},
		{"large case-insensitive set folds", in(many, `,"caseInsensitive":true`), map[string]any{"a": "V8"}, true},
		{"large case-insensitive set uses Unicode folding", in(many, `,"caseInsensitive":true`), map[string]any{"a": "kelvin"}, true},
		{"large case-insensitive set folds non-ASCII", in(many, `,"caseInsensitive":true`), map[string]any{"a": "STRAßE"}, true},
	})
}

func TestOperatorStrings(t *testing.T) {
	t.Parallel()
	c := func(op, vals, extra string) string {
		return `{"attribute":"email","operator":"` + op + `","values":` + vals + extra + `}`
	}
	const ci = `,"caseInsensitive":true`
	runOperatorCases(t, "", []operatorCase{
		{"starts_with matches a prefix", c("OPERATOR_STARTS_WITH", `["adm"]`, ""), map[string]any{"email": "admin@x"}, true},
		{"starts_with is case-sensitive", c("OPERATOR_STARTS_WITH", `["ADM"]`, ""), map[string]any{"email": "admin@x"}, false},
		{"starts_with caseInsensitive", c("OPERATOR_STARTS_WITH", `["ADM"]`, ci), map[string]any{"email": "admin@x"}, true},
		{"starts_with any value", c("OPERATOR_STARTS_WITH", `["x","a"]`, ""), map[string]any{"email": "admin@x"}, true},
		{"starts_with never matches a number", c("OPERATOR_STARTS_WITH", `["4"]`, ""), map[string]any{"email": 42}, false},
		{"negated starts_with on a number matches (present, wrong type)", c("OPERATOR_STARTS_WITH", `["4"]`, `,"negate":true`), map[string]any{"email": 42}, true},
		{"ends_with matches a suffix", c("OPERATOR_ENDS_WITH", `["@example.com"]`, ""), map[string]any{"email": "a@example.com"}, true},
		{"ends_with caseInsensitive", c("OPERATOR_ENDS_WITH", `["@EXAMPLE.COM"]`, ci), map[string]any{"email": "a@example.com"}, true},
		{"ends_with never matches a bool", c("OPERATOR_ENDS_WITH", `["e"]`, ""), map[string]any{"email": true}, false},
		{"contains matches a substring", c("OPERATOR_CONTAINS", `["@ex"]`, ""), map[string]any{"email": "a@example.com"}, true},
		{"contains caseInsensitive with Unicode folds", c("OPERATOR_CONTAINS", `["\u212a"]`, ci), map[string]any{"email": "ok"}, true},
		{"contains misses", c("OPERATOR_CONTAINS", `["zz"]`, ""), map[string]any{"email": "a@example.com"}, false},
		{"contains on a list attribute", c("OPERATOR_CONTAINS", `["b"]`, ""), map[string]any{"email": []any{"x", "abc"}}, true},
		{"matches is an unanchored search", c("OPERATOR_MATCHES", `["[0-9]+"]`, ""), map[string]any{"email": "ab12cd"}, true},
		{"matches honours anchors", c("OPERATOR_MATCHES", `["^[0-9]+$"]`, ""), map[string]any{"email": "ab12cd"}, false},
		{"matches is case-sensitive", c("OPERATOR_MATCHES", `["ADMIN"]`, ""), map[string]any{"email": "admin"}, false},
		{"matches caseInsensitive compiles with (?i)", c("OPERATOR_MATCHES", `["ADMIN"]`, ci), map[string]any{"email": "admin"}, true},
		{"matches never matches a number", c("OPERATOR_MATCHES", `["4"]`, ""), map[string]any{"email": 4}, false},
	})
}

func TestOperatorNumeric(t *testing.T) {
	t.Parallel()
	c := func(op, vals string) string {
		return `{"attribute":"n","operator":"` + op + `","values":` + vals + `}`
	}
	runOperatorCases(t, "", []operatorCase{
		{"lt true", c("OPERATOR_LT", `[10]`), map[string]any{"n": 9.5}, true},
		{"lt false on equal", c("OPERATOR_LT", `[10]`), map[string]any{"n": 10}, false},
		{"lte true on equal", c("OPERATOR_LTE", `[10]`), map[string]any{"n": 10}, true},
		{"gt true", c("OPERATOR_GT", `[10]`), map[string]any{"n": 11}, true},
		{"gt false on equal", c("OPERATOR_GT", `[10]`), map[string]any{"n": 10}, false},
		{"gte true on equal", c("OPERATOR_GTE", `[10]`), map[string]any{"n": 10}, true},
		{"numeric string attribute", c("OPERATOR_GT", `[10]`), map[string]any{"n": "10.5"}, true},
		{"numeric string value", c("OPERATOR_GT", `["10"]`), map[string]any{"n": 11}, true},
		{"exponent in a string", c("OPERATOR_GT", `[10]`), map[string]any{"n": "1e3"}, true},
		{"non-numeric string never matches", c("OPERATOR_GT", `[10]`), map[string]any{"n": "eleven"}, false},
		{"hex string is not a number", c("OPERATOR_GT", `[10]`), map[string]any{"n": "0x20"}, false},
		{"Inf string is not a number", c("OPERATOR_GT", `[10]`), map[string]any{"n": "Inf"}, false},
		{"NaN string is not a number", c("OPERATOR_LT", `[10]`), map[string]any{"n": "NaN"}, false},
		{"spaces make a string non-numeric", c("OPERATOR_GT", `[10]`), map[string]any{"n": " 11"}, false},
		{"overflowing string is not a number", c("OPERATOR_GT", `[10]`), map[string]any{"n": "1e400"}, false},
		{"bool never matches", c("OPERATOR_GT", `[0]`), map[string]any{"n": true}, false},
		{"any value", c("OPERATOR_LT", `[1, 100]`), map[string]any{"n": 50}, true},
		{"any list element", c("OPERATOR_LT", `[1]`), map[string]any{"n": []any{5.0, 0.5}}, true},
		{"negative numbers", c("OPERATOR_LT", `[-1]`), map[string]any{"n": -2}, true},
		{"huge numbers", c("OPERATOR_GT", `[1e300]`), map[string]any{"n": 1.7e308}, true},
	})
}

func TestOperatorSemver(t *testing.T) {
	t.Parallel()
	c := func(op, vals string) string {
		return `{"attribute":"v","operator":"` + op + `","values":` + vals + `}`
	}
	runOperatorCases(t, "", []operatorCase{
		{"eq same version", c("OPERATOR_SEMVER_EQ", `["1.2.3"]`), map[string]any{"v": "1.2.3"}, true},
		{"eq ignores a v prefix", c("OPERATOR_SEMVER_EQ", `["1.2.3"]`), map[string]any{"v": "v1.2.3"}, true},
		{"eq partial version", c("OPERATOR_SEMVER_EQ", `["1.2.0"]`), map[string]any{"v": "1.2"}, true},
		{"eq ignores build metadata", c("OPERATOR_SEMVER_EQ", `["1.2.3"]`), map[string]any{"v": "1.2.3+b7"}, true},
		{"prerelease is lower", c("OPERATOR_SEMVER_LT", `["1.2.3"]`), map[string]any{"v": "1.2.3-rc.1"}, true},
		{"numeric identifiers compare numerically", c("OPERATOR_SEMVER_GT", `["1.0.0-beta.2"]`), map[string]any{"v": "1.0.0-beta.11"}, true},
		{"minor compares numerically", c("OPERATOR_SEMVER_GT", `["1.9.0"]`), map[string]any{"v": "1.10.0"}, true},
		{"lt false on greater", c("OPERATOR_SEMVER_LT", `["1.2.3"]`), map[string]any{"v": "2.0.0"}, false},
		{"invalid attribute never matches", c("OPERATOR_SEMVER_LT", `["9.0.0"]`), map[string]any{"v": "1.2.3.4"}, false},
		{"dashes are invalid", c("OPERATOR_SEMVER_LT", `["9.0.0"]`), map[string]any{"v": "1-2-3"}, false},
		{"a number is not a version", c("OPERATOR_SEMVER_LT", `["9.0.0"]`), map[string]any{"v": 1}, false},
	})
}

func TestOperatorTime(t *testing.T) {
	t.Parallel()
	c := func(op, vals string) string {
		return `{"attribute":"t","operator":"` + op + `","values":` + vals + `}`
	}
	runOperatorCases(t, "", []operatorCase{
		{"before: attribute earlier", c("OPERATOR_BEFORE", `["2025-01-01T00:00:00Z"]`), map[string]any{"t": "2024-12-31T23:59:59Z"}, true},
		{"before: equal is not before", c("OPERATOR_BEFORE", `["2025-01-01T00:00:00Z"]`), map[string]any{"t": "2025-01-01T00:00:00Z"}, false},
		{"after: attribute later", c("OPERATOR_AFTER", `["2025-01-01T00:00:00Z"]`), map[string]any{"t": "2025-01-01T00:00:00.000000001Z"}, true},
		{"offsets are honoured", c("OPERATOR_BEFORE", `["2025-01-01T00:00:00Z"]`), map[string]any{"t": "2025-01-01T00:30:00+01:00"}, true},
		{"numbers are Unix milliseconds", c("OPERATOR_AFTER", `["2025-01-01T00:00:00Z"]`), map[string]any{"t": 1735689600001.0}, true},
		{"millisecond values", c("OPERATOR_BEFORE", `[1735689600000]`), map[string]any{"t": "2024-12-31T23:59:59.999Z"}, true},
		{"a non-RFC 3339 string never matches", c("OPERATOR_BEFORE", `["2025-01-01T00:00:00Z"]`), map[string]any{"t": "2024-01-01"}, false},
		{"a numeric string is not a timestamp", c("OPERATOR_BEFORE", `["2025-01-01T00:00:00Z"]`), map[string]any{"t": "1"}, false},
		{"huge numbers are far in the future", c("OPERATOR_AFTER", `["9999-12-31T23:59:59Z"]`), map[string]any{"t": 1e300}, true},
		{"bool never matches", c("OPERATOR_BEFORE", `["2025-01-01T00:00:00Z"]`), map[string]any{"t": true}, false},
	})
}

func TestOperatorIPInCIDR(t *testing.T) {
	t.Parallel()
	c := func(vals string) string {
		return `{"attribute":"ip","operator":"OPERATOR_IP_IN_CIDR","values":` + vals + `}`
	}
	runOperatorCases(t, "", []operatorCase{
		{"IPv4 in range", c(`["10.0.0.0/8"]`), map[string]any{"ip": "10.1.2.3"}, true},
		{"IPv4 out of range", c(`["10.0.0.0/8"]`), map[string]any{"ip": "11.1.2.3"}, false},
		{"any range", c(`["192.168.0.0/16","10.0.0.0/8"]`), map[string]any{"ip": "10.1.2.3"}, true},
		{"IPv6 in range", c(`["2001:db8::/32"]`), map[string]any{"ip": "2001:db8::1"}, true},
		{"IPv4-mapped IPv6 matches IPv4 ranges", c(`["10.0.0.0/8"]`), map[string]any{"ip": "::ffff:10.0.0.1"}, true},
		{"IPv4 matches an IPv4-mapped range", c(`["::ffff:10.0.0.0/104"]`), map[string]any{"ip": "10.0.0.1"}, true},
		{"non-canonical prefix is masked", c(`["10.1.2.3/8"]`), map[string]any{"ip": "10.9.9.9"}, true},
		{"an invalid address never matches", c(`["0.0.0.0/0"]`), map[string]any{"ip": "not-an-ip"}, false},
		{"a number never matches", c(`["0.0.0.0/0"]`), map[string]any{"ip": 167772161}, false},
		{"negated: a number matches", `{"attribute":"ip","operator":"OPERATOR_IP_IN_CIDR","negate":true,"values":["0.0.0.0/0"]}`, map[string]any{"ip": 1}, true},
	})
}

func TestOperatorExists(t *testing.T) {
	t.Parallel()
	c := `{"attribute":"a","operator":"OPERATOR_EXISTS"}`
	neg := `{"attribute":"a","operator":"OPERATOR_EXISTS","negate":true}`
	runOperatorCases(t, "", []operatorCase{
		{"present", c, map[string]any{"a": ""}, true},
		{"present false", c, map[string]any{"a": false}, true},
		{"present empty list", c, map[string]any{"a": []any{}}, true},
		{"absent", c, map[string]any{}, false},
		{"null is absent", c, map[string]any{"a": nil}, false},
		{"negated: absent matches", neg, map[string]any{}, true},
		{"negated: null matches", neg, map[string]any{"a": nil}, true},
		{"negated: present does not match", neg, map[string]any{"a": 1}, false},
		{"values are ignored", `{"attribute":"a","operator":"OPERATOR_EXISTS","values":[1]}`, map[string]any{"a": "x"}, true},
	})
}

func TestOperatorSegmentMatch(t *testing.T) {
	t.Parallel()
	segments := `[
		{"key":"beta","included":["u1"],"excluded":["u2"],
		 "rules":[{"clauses":[{"attribute":"plan","operator":"OPERATOR_IN","values":["pro"]}]}]},
		{"key":"staff","rules":[{"clauses":[
			{"attribute":"email","operator":"OPERATOR_ENDS_WITH","values":["@corp.com"]},
			{"attribute":"verified","operator":"OPERATOR_IN","values":[true]}]}]},
		{"key":"nested","rules":[{"clauses":[{"operator":"OPERATOR_SEGMENT_MATCH","values":["staff"]}]}]}]`
	c := func(vals, extra string) string {
		return `{"operator":"OPERATOR_SEGMENT_MATCH","values":` + vals + extra + `}`
	}
	runOperatorCases(t, segments, []operatorCase{
		{"included key is in", c(`["beta"]`, ""), map[string]any{"targetingKey": "u1"}, true},
		{"excluded key beats rules", c(`["beta"]`, ""), map[string]any{"targetingKey": "u2", "plan": "pro"}, false},
		{"rule matches", c(`["beta"]`, ""), map[string]any{"targetingKey": "u3", "plan": "pro"}, true},
		{"rule without targetingKey", c(`["beta"]`, ""), map[string]any{"plan": "pro"}, true},
		{"no rule matches", c(`["beta"]`, ""), map[string]any{"targetingKey": "u3", "plan": "free"}, false},
		{"segment rule clauses are AND-ed", c(`["staff"]`, ""), map[string]any{"email": "a@corp.com", "verified": false}, false},
		{"segment rule all clauses", c(`["staff"]`, ""), map[string]any{"email": "a@corp.com", "verified": true}, true},
		{"any listed segment", c(`["beta","staff"]`, ""), map[string]any{"email": "a@corp.com", "verified": true}, true},
		{"nested segment reference", c(`["nested"]`, ""), map[string]any{"email": "a@corp.com", "verified": true}, true},
		{"unknown segment never matches", c(`["nope"]`, ""), map[string]any{"targetingKey": "u1"}, false},
		{"negate: in none of them", c(`["beta"]`, `,"negate":true`), map[string]any{"targetingKey": "u9"}, true},
		{"negate: in one of them", c(`["beta"]`, `,"negate":true`), map[string]any{"targetingKey": "u1"}, false},
		{"numeric targetingKey formatted for inclusion", c(`["beta"]`, ""), map[string]any{"targetingKey": "u1"}, true},
	})
}

func TestAttributePaths(t *testing.T) {
	t.Parallel()
	c := func(attr string) string {
		return `{"attribute":"` + attr + `","operator":"OPERATOR_IN","values":["x"]}`
	}
	runOperatorCases(t, "", []operatorCase{
		{"dotted path into an object", c("org.plan"), map[string]any{"org": map[string]any{"plan": "x"}}, true},
		{"deeper path", c("a.b.c"), map[string]any{"a": map[string]any{"b": map[string]any{"c": "x"}}}, true},
		{"key with a dot looked up exactly first", c("org.plan"), map[string]any{"org.plan": "x", "org": map[string]any{"plan": "y"}}, true},
		{"exact key wins even if it does not match", c("org.plan"), map[string]any{"org.plan": "y", "org": map[string]any{"plan": "x"}}, false},
		{"mixed: dotted key inside an object", c("a.b.c"), map[string]any{"a": map[string]any{"b.c": "x"}}, true},
		{"mixed: object inside a dotted key", c("a.b.c"), map[string]any{"a.b": map[string]any{"c": "x"}}, true},
		{"path through a non-object", c("org.plan"), map[string]any{"org": "x"}, false},
		{"missing path", c("org.plan"), map[string]any{"org": map[string]any{}}, false},
		{"targetingKey is an ordinary attribute", c("targetingKey"), map[string]any{"targetingKey": "x"}, true},
	})
}
