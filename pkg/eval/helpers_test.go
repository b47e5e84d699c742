package eval

import (
	"fmt"
	"strconv"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

func itoa(i int) string { return strconv.Itoa(i) }

// parseManifest decodes a protojson manifest.
func parseManifest(t testing.TB, js string) *manifestv1.Manifest {
	t.Helper()
	var m manifestv1.Manifest
	if err := protojson.Unmarshal([]byte(js), &m); err != nil {
		t.Fatalf("decoding manifest: %v\n%s", err, js)
	}
	return &m
}

// compileJSON decodes and compiles a protojson manifest.
func compileJSON(t testing.TB, js string) *Manifest {
	t.Helper()
	m, err := Compile(parseManifest(t, js))
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return m
}

// parseFlag decodes a protojson flag.
func parseFlag(t testing.TB, js string) *manifestv1.Flag {
	t.Helper()
	var f manifestv1.Flag
	if err := protojson.Unmarshal([]byte(js), &f); err != nil {
		t.Fatalf("decoding flag: %v\n%s", err, js)
	}
	return &f
}

func mustContext(t testing.TB, attrs map[string]any) *Context {
	t.Helper()
	c, err := NewContext(attrs)
	if err != nil {
		t.Fatalf("NewContext: %v", err)
	}
	return c
}

// boolFlag is a boolean flag "f" (variants on/off) with one rule r1 serving "on"
// whose clauses are given, and a defaultServe of "off".
func boolFlag(clauses string) string {
	return fmt.Sprintf(`{"key":"f","type":"FLAG_TYPE_BOOLEAN",
		"variants":[{"key":"on","value":true},{"key":"off","value":false}],
		"config":{"on":true,"rules":[{"id":"r1","clauses":[%s],"serve":{"variant":"on"}}],
		"defaultServe":{"variant":"off"}}}`, clauses)
}

// clauseManifest is a manifest holding boolFlag(clause) and the given segments.
func clauseManifest(clause, segments string) string {
	if segments == "" {
		segments = "[]"
	}
	return fmt.Sprintf(`{"version":"1","flags":[%s],"segments":%s}`, boolFlag(clause), segments)
}

func protojsonUnmarshal(b []byte, m proto.Message) error { return protojson.Unmarshal(b, m) }
