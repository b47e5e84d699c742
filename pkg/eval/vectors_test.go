package eval

import (
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/murmur3"
	"google.golang.org/protobuf/encoding/protojson"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// vectorFile is testdata/vectors.json (see testdata/README.md).
type vectorFile struct {
	Version int `json:"version"`
	Suites  []struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Manifest    json.RawMessage `json:"manifest"`
		Cases       []struct {
			Name         string         `json:"name"`
			FlagKey      string         `json:"flagKey"`
			Context      map[string]any `json:"context"`
			ValueType    string         `json:"valueType"`
			DefaultValue any            `json:"defaultValue"`
			Expected     struct {
				Value     any    `json:"value"`
				Variant   string `json:"variant"`
				Reason    string `json:"reason"`
				RuleID    string `json:"ruleId"`
				ErrorCode string `json:"errorCode"`
			} `json:"expected"`
		} `json:"cases"`
	} `json:"suites"`
	Bucketing []struct {
		Seed        string `json:"seed"`
		Value       string `json:"value"`
		Hash        uint32 `json:"hash"`
		TotalWeight uint32 `json:"totalWeight"`
		Bucket      uint32 `json:"bucket"`
	} `json:"bucketing"`
	Distributions []struct {
		Name           string             `json:"name"`
		Manifest       json.RawMessage    `json:"manifest"`
		FlagKey        string             `json:"flagKey"`
		KeyPrefix      string             `json:"keyPrefix"`
		Count          int                `json:"count"`
		ExpectedShares map[string]float64 `json:"expectedShares"`
		Tolerance      float64            `json:"tolerance"`
	} `json:"distributions"`
}

func loadVectors(t *testing.T) *vectorFile {
	t.Helper()
	data, err := os.ReadFile("testdata/vectors.json")
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("testdata/vectors.json does not exist yet")
	}
	if err != nil {
		t.Fatal(err)
	}
	var v vectorFile
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decoding vectors.json: %v", err)
	}
	if v.Version != 1 {
		t.Fatalf("vectors.json version %d, this runner reads version 1", v.Version)
	}
	return &v
}

func compileVectorManifest(t *testing.T, raw json.RawMessage) *Manifest {
	t.Helper()
	var pm manifestv1.Manifest
	if err := protojson.Unmarshal(raw, &pm); err != nil {
		t.Fatalf("decoding manifest: %v", err)
	}
	m, err := Compile(&pm)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return m
}

// vectorResult is the compared part of a Result.
type vectorResult struct {
	Value     any
	Variant   string
	Reason    string
	RuleID    string
	ErrorCode string
}

// TestVectors runs the shared, language-neutral test vectors.
func TestVectors(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	for _, suite := range v.Suites {
		m := compileVectorManifest(t, suite.Manifest)
		for _, c := range suite.Cases {
			t.Run(suite.Name+"/"+c.Name, func(t *testing.T) {
				t.Parallel()
				want, err := ParseValueType(c.ValueType)
				if err != nil {
					t.Fatal(err)
				}
				ctx, err := NewContext(c.Context)
				if err != nil {
					t.Fatalf("NewContext: %v", err)
				}
				r := m.Evaluate(c.FlagKey, ctx, want, c.DefaultValue)
				got := vectorResult{Value: r.Value, Variant: r.Variant, Reason: string(r.Reason), RuleID: r.RuleID, ErrorCode: string(r.ErrorCode)}
				exp := vectorResult{Value: c.Expected.Value, Variant: c.Expected.Variant, Reason: c.Expected.Reason, RuleID: c.Expected.RuleID, ErrorCode: c.Expected.ErrorCode}
				if diff := cmp.Diff(exp, got); diff != "" {
					t.Errorf("result mismatch (-want +got):\n%s\nerrorMessage: %s", diff, r.ErrorMessage)
				}
			})
		}
	}
}

// TestVectorsBucketing checks the bucketing table: the hash and the bucket.
func TestVectorsBucketing(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	for _, row := range v.Bucketing {
		if h := murmur3.StringSum32(row.Seed + row.Value); h != row.Hash {
			t.Errorf("murmur3(%q+%q) = %d, want %d", row.Seed, row.Value, h, row.Hash)
		}
		if h := hashBytes([]byte(row.Seed + row.Value)); h != row.Hash {
			t.Errorf("hashBytes(%q+%q) = %d, want %d", row.Seed, row.Value, h, row.Hash)
		}
		if b := Bucket(row.Seed, row.Value, row.TotalWeight); b != row.Bucket {
			t.Errorf("Bucket(%q, %q, %d) = %d, want %d", row.Seed, row.Value, row.TotalWeight, b, row.Bucket)
		}
	}
}

// TestVectorsDistributions checks that rollouts serve each variant its share.
func TestVectorsDistributions(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	for _, d := range v.Distributions {
		t.Run(d.Name, func(t *testing.T) {
			t.Parallel()
			m := compileVectorManifest(t, d.Manifest)
			counts := map[string]int{}
			for i := range d.Count {
				ctx, err := NewContext(map[string]any{TargetingKey: d.KeyPrefix + itoa(i)})
				if err != nil {
					t.Fatal(err)
				}
				r := m.Evaluate(d.FlagKey, ctx, Any, nil)
				if r.Reason != ReasonSplit {
					t.Fatalf("key %d: reason %s (%s), want SPLIT", i, r.Reason, r.ErrorMessage)
				}
				counts[r.Variant]++
			}
			for variant, share := range d.ExpectedShares {
				got := float64(counts[variant]) / float64(d.Count)
				if math.Abs(got-share) > d.Tolerance {
					t.Errorf("variant %q: share %.4f, want %.4f ± %.4f", variant, got, share, d.Tolerance)
				}
			}
			for variant := range counts {
				if _, ok := d.ExpectedShares[variant]; !ok {
					t.Errorf("variant %q served %d times, not expected", variant, counts[variant])
				}
			}
		})
	}
}
