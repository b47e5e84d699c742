package eval

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// rolloutManifest is a string flag "r" whose defaultServe is a rollout over the
// variants v0..v(n-1) with the given weights.
func rolloutManifest(weights []int32, seed string) string {
	var variants, ws []string
	for i, w := range weights {
		variants = append(variants, fmt.Sprintf(`{"key":"v%d","value":"V%d"}`, i, i))
		ws = append(ws, fmt.Sprintf(`{"variant":"v%d","weight":%d}`, i, w))
	}
	return fmt.Sprintf(`{"flags":[{"key":"r","type":"FLAG_TYPE_STRING","variants":[%s],
		"config":{"on":true,"defaultServe":{"rollout":{"seed":%q,"weights":[%s]}}}}]}`,
		strings.Join(variants, ","), seed, strings.Join(ws, ","))
}

func randomWeights(rng *rand.Rand) []int32 {
	n := 1 + rng.IntN(6)
	w := make([]int32, n)
	var total int32
	for i := range w {
		w[i] = int32(rng.IntN(10000))
		total += w[i]
	}
	if total == 0 {
		w[0] = 1
	}
	return w
}

// TestRolloutsAreSticky: the same key always gets the same variant, across
// evaluations and recompiles of the same manifest.
func TestRolloutsAreSticky(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 50 {
		pm := parseManifest(t, rolloutManifest(randomWeights(rng), fmt.Sprintf("seed-%d", trial)))
		m1, err := Compile(pm)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := Compile(proto.Clone(pm).(*manifestv1.Manifest))
		if err != nil {
			t.Fatal(err)
		}
		for range 200 {
			ctx := mustContext(t, map[string]any{"targetingKey": fmt.Sprintf("user-%d", rng.Int64())})
			a := m1.Evaluate("r", ctx, String, nil)
			b := m1.Evaluate("r", ctx, String, nil)
			c := m2.Evaluate("r", ctx, String, nil)
			if a.Variant == "" || a.Reason != ReasonSplit || a != b || a.Variant != c.Variant {
				t.Fatalf("not sticky: %+v / %+v / %+v", a, b, c)
			}
		}
	}
}

// TestRolloutsAreMonotonic: raising a variant's weight, taking weight from the
// others, never moves a key out of that variant.
func TestRolloutsAreMonotonic(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	keys := make([]*Context, 500)
	for i := range keys {
		keys[i] = mustContext(t, map[string]any{"targetingKey": fmt.Sprintf("k-%d-%d", i, rng.Uint32())})
	}
	for trial := range 100 {
		before := randomWeights(rng)
		if len(before) < 2 {
			before = append(before, int32(rng.IntN(100)))
		}
		v := rng.IntN(len(before))
		after := append([]int32(nil), before...)
		for i := range after {
			if i == v {
				continue
			}
			take := int32(0)
			if after[i] > 0 {
				take = int32(rng.IntN(int(after[i]) + 1))
			}
			after[i] -= take
			after[v] += take
		}
		seed := fmt.Sprintf("mono-%d", trial)
		m1 := compileJSON(t, rolloutManifest(before, seed))
		m2 := compileJSON(t, rolloutManifest(after, seed))
		want := fmt.Sprintf("v%d", v)
		for _, ctx := range keys {
			r1 := m1.Evaluate("r", ctx, Any, nil)
			r2 := m2.Evaluate("r", ctx, Any, nil)
			if r1.Variant == want && r2.Variant != want {
				t.Fatalf("weights %v -> %v moved %v out of %s into %s", before, after, ctx.Attributes(), want, r2.Variant)
			}
		}
	}
}

// TestBucketMatchesReferenceTable is the table of design/EVALUATION.md.
func TestBucketMatchesReferenceTable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		seed, value string
		hash        uint32
		total       uint32
		bucket      uint32
	}{
		{"new-ui", "user-1", 2339999566, 100000, 54482},
		{"new-ui", "user-2", 4101517109, 100000, 95495},
		{"checkout-v2", "42", 1614761082, 100000, 37596},
		{"checkout-v2", "ünïcødé", 2564086923, 100000, 59699},
		{"exp-shared-seed", "user-1", 1832576871, 3, 1},
	}
	for _, tt := range tests {
		if h := hashBytes([]byte(tt.seed + tt.value)); h != tt.hash {
			t.Errorf("hash(%q+%q) = %d, want %d", tt.seed, tt.value, h, tt.hash)
		}
		if b := Bucket(tt.seed, tt.value, tt.total); b != tt.bucket {
			t.Errorf("Bucket(%q, %q, %d) = %d, want %d", tt.seed, tt.value, tt.total, b, tt.bucket)
		}
	}
	long := strings.Repeat("long-seed-", 30)
	if Bucket(long, long, 1000) != bucketOf(hashBytes([]byte(long+long)), 1000) {
		t.Error("Bucket differs for inputs longer than its stack buffer")
	}
}
