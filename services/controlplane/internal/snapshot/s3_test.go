package snapshot_test

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/flagforge/flagforge/services/controlplane/internal/snapshot"
)

// fakeS3 serves gofakes3 (the S3 HTTP API over an in-memory backend) on
// 127.0.0.1 with an existing bucket and returns its backend and a config for it.
// gofakes3 does not check request signatures: the client signs as against AWS,
// but a wrong key would not be noticed here.
func fakeS3(t *testing.T, bucket, prefix string) (*s3mem.Backend, snapshot.S3Config) {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	return backend, snapshot.S3Config{
		Endpoint: strings.TrimPrefix(srv.URL, "http://"), Bucket: bucket, Prefix: prefix,
		Region: "us-east-1", AccessKey: "test-access", SecretKey: "test-secret", Insecure: true,
	}
}

func TestS3PutUploadsOneObjectPerVersionThatGetReadsBack(t *testing.T) {
	t.Parallel()
	backend, cfg := fakeS3(t, "snapshots", "ff/")
	s, err := snapshot.NewS3(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for v := uint64(1); v <= 3; v++ {
		if err := s.Put(t.Context(), "acme/web/production", v, fmt.Appendf(nil, "v%d", v)); err != nil {
			t.Fatalf("put version %d: %v", v, err)
		}
	}
	// Put is idempotent: writing a version again leaves one object.
	if err := s.Put(t.Context(), "acme/web/production", 3, []byte("v3")); err != nil {
		t.Fatal(err)
	}
	for v, name := range map[uint64]string{
		1: "ff/acme/web/production/00000000000000000001.manifest",
		2: "ff/acme/web/production/00000000000000000002.manifest",
		3: "ff/acme/web/production/00000000000000000003.manifest",
	} {
		obj, err := backend.GetObject("snapshots", name, nil)
		if err != nil {
			t.Fatalf("object %s not on the server: %v", name, err)
		}
		body, _ := io.ReadAll(obj.Contents)
		_ = obj.Contents.Close()
		if string(body) != fmt.Sprintf("v%d", v) {
			t.Fatalf("object %s holds %q", name, body)
		}
		got, err := s.Get(t.Context(), "acme/web/production", v)
		if err != nil || string(got) != string(body) {
			t.Fatalf("Get version %d: %q %v", v, got, err)
		}
	}
	list, err := backend.ListBucket("snapshots", nil, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Contents) != 3 {
		t.Fatalf("bucket holds %d objects, want 3", len(list.Contents))
	}
	if _, err := s.Get(t.Context(), "acme/web/production", 4); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing version: %v, want fs.ErrNotExist", err)
	}
}

func TestS3PutToAMissingBucketFails(t *testing.T) {
	t.Parallel()
	_, cfg := fakeS3(t, "snapshots", "")
	cfg.Bucket = "no-such-bucket"
	s, err := snapshot.NewS3(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(t.Context(), "acme/web/production", 1, []byte("v1")); err == nil {
		t.Fatal("put into a missing bucket reported success")
	}
}

func TestS3NewestNamesEachTargetsHighestVersionUnderThePrefix(t *testing.T) {
	t.Parallel()
	backend, cfg := fakeS3(t, "snapshots", "ff/")
	s, err := snapshot.NewS3(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []uint64{3, 12, 7} {
		if err := s.Put(t.Context(), "acme/web/production", v, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutCheckpoint(t.Context(), "acme", 5, []byte("{}")); err != nil {
		t.Fatal(err)
	}
	// An object outside the prefix belongs to someone else.
	if _, err := backend.PutObject("snapshots", "other/acme/web/production/00000000000000000099.manifest", nil,
		strings.NewReader("x"), 1, nil); err != nil {
		t.Fatal(err)
	}
	got, err := s.Newest(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got["acme/web/production"] != 12 {
		t.Fatalf("Newest = %v, want acme/web/production: 12", got)
	}
}
