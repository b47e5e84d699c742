package snapshot_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/flagforge/flagforge/services/controlplane/internal/snapshot"
)

func TestDirStoresEachVersionUnderAZeroPaddedName(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	d, err := snapshot.NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Put(t.Context(), "acme/web/production", 42, []byte("v42")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "acme", "web", "production", "00000000000000000042.manifest"))
	if err != nil || string(b) != "v42" {
		t.Fatalf("file: %q %v", b, err)
	}
	got, err := d.Get(t.Context(), "acme/web/production", 42)
	if err != nil || string(got) != "v42" {
		t.Fatalf("Get: %q %v", got, err)
	}
	if _, err := d.Get(t.Context(), "acme/web/production", 43); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing version: %v, want fs.ErrNotExist", err)
	}
	entries, _ := os.ReadDir(filepath.Join(root, "acme", "web", "production"))
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want 1 (no temporary files left)", len(entries))
	}
}

func TestTargetsThatEscapeTheRootAreRefused(t *testing.T) {
	t.Parallel()
	d, err := snapshot.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"../web/production", "acme/web", "acme//production", `acme/w\eb/x`} {
		if err := d.Put(t.Context(), target, 1, nil); err == nil {
			t.Errorf("target %q accepted", target)
		}
	}
}

// Configuration and naming only; s3_test.go uploads to an S3-compatible server.
func TestS3ConfigNeedsEndpointAndBucket(t *testing.T) {
	t.Parallel()
	if _, err := snapshot.NewS3(snapshot.S3Config{Bucket: "b"}); err == nil {
		t.Error("missing endpoint accepted")
	}
	if _, err := snapshot.NewS3(snapshot.S3Config{Endpoint: "https://s3.example.com", Bucket: "b"}); err == nil {
		t.Error("endpoint with scheme accepted")
	}
	s, err := snapshot.NewS3(snapshot.S3Config{Endpoint: "127.0.0.1:9000", Bucket: "b", Prefix: "ff/", AccessKey: "a", SecretKey: "s", Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	name, err := s.ObjectName("acme/web/production", 7)
	if err != nil || name != "ff/acme/web/production/00000000000000000007.manifest" {
		t.Fatalf("object name %q %v", name, err)
	}
}

func TestNewestNamesEachTargetsHighestVersionAndIgnoresOtherObjects(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	d, err := snapshot.NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []uint64{1, 9, 10, 2} {
		if err := d.Put(t.Context(), "acme/web/production", v, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Put(t.Context(), "acme/web/staging", 3, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := d.PutCheckpoint(t.Context(), "acme", 99, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "acme", "web", "production", ".tmp-123"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := d.Newest(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{"acme/web/production": 10, "acme/web/staging": 3}
	if len(got) != len(want) || got["acme/web/production"] != 10 || got["acme/web/staging"] != 3 {
		t.Fatalf("Newest = %v, want %v", got, want)
	}
}
