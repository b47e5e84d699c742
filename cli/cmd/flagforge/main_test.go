package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const example = "../../flagsfile/testdata/every-feature.yaml"

// TestOfflineCommands: validate and evaluate work on a file without a server, and
// an invalid file is refused naming the problem.
func TestOfflineCommands(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"validate", "-f", example}, &out); err != nil || !strings.Contains(out.String(), "is valid: 4 flags") {
		t.Fatalf("validate: %v %s", err, out.String())
	}
	out.Reset()
	err := run(context.Background(), []string{"evaluate", "-f", example, "--env", "production", "--flag", "checkout", "--context", `{"targetingKey":"vip-1"}`}, &out)
	if err != nil || !strings.Contains(out.String(), "listed in the flag's targets") {
		t.Fatalf("evaluate: %v %s", err, out.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\nflags: [{key: a, type: boolean, colour: red}]\nenvironments: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"validate", "-f", bad}, &out); err == nil || !strings.Contains(err.Error(), "colour") {
		t.Fatalf("an unknown field: %v", err)
	}
	if err := run(context.Background(), []string{"apply", "-f", example}, &out); err == nil || !strings.Contains(err.Error(), "--org") {
		t.Fatalf("apply without a project: %v", err)
	}
}
