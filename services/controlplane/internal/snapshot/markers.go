package snapshot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

// RecoveryMarkerName is the object name of an organization's audit recovery
// marker written at time at: {org}/_audit/recovery-{unix nanos:020d}.marker,
// beside its checkpoints (checkpoint.Recovery says what a marker records).
func RecoveryMarkerName(org string, at time.Time) (string, error) {
	name, err := CheckpointName(org, 0)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s/recovery-%020d.marker", name[:strings.LastIndex(name, "/")], at.UnixNano()), nil
}

// isRecoveryMarker reports whether an object's base name is a recovery marker's.
func isRecoveryMarker(base string) bool {
	return strings.HasPrefix(base, "recovery-") && strings.HasSuffix(base, ".marker")
}

// PutRecoveryMarker writes an audit recovery marker (atomically, like Put).
func (d *Dir) PutRecoveryMarker(_ context.Context, org string, at time.Time, data []byte) error {
	name, err := RecoveryMarkerName(org, at)
	if err != nil {
		return err
	}
	return d.write(name, data)
}

// RecoveryMarkers reads every recovery marker of an organization, oldest first.
func (d *Dir) RecoveryMarkers(_ context.Context, org string) ([][]byte, error) {
	name, err := RecoveryMarkerName(org, time.Time{})
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(d.root, filepath.Dir(filepath.FromSlash(name)))
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	var out [][]byte
	for _, e := range ents { // ReadDir sorts by name: by time
		if !isRecoveryMarker(e.Name()) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("snapshot: %w", err)
		}
		out = append(out, b)
	}
	return out, nil
}

// PutRecoveryMarker uploads an audit recovery marker.
func (s *S3) PutRecoveryMarker(ctx context.Context, org string, at time.Time, data []byte) error {
	name, err := RecoveryMarkerName(org, at)
	if err != nil {
		return err
	}
	_, err = s.c.PutObject(ctx, s.bucket, s.prefix+name, bytes.NewReader(data), int64(len(data)),
		minio.PutObjectOptions{ContentType: "application/json"})
	if err != nil {
		return fmt.Errorf("snapshot: S3 put %s: %w", name, err)
	}
	return nil
}

// RecoveryMarkers downloads every recovery marker of an organization, oldest first.
func (s *S3) RecoveryMarkers(ctx context.Context, org string) ([][]byte, error) {
	name, err := RecoveryMarkerName(org, time.Time{})
	if err != nil {
		return nil, err
	}
	prefix := s.prefix + name[:strings.LastIndex(name, "/")+1]
	var keys []string
	for obj := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("snapshot: S3 list %s: %w", prefix, obj.Err)
		}
		if isRecoveryMarker(strings.TrimPrefix(obj.Key, prefix)) {
			keys = append(keys, obj.Key)
		}
	}
	sort.Strings(keys)
	out := make([][]byte, 0, len(keys))
	for _, k := range keys {
		obj, err := s.c.GetObject(ctx, s.bucket, k, minio.GetObjectOptions{})
		if err != nil {
			return nil, fmt.Errorf("snapshot: S3 get %s: %w", k, err)
		}
		b, err := io.ReadAll(obj)
		_ = obj.Close()
		if err != nil {
			return nil, fmt.Errorf("snapshot: S3 get %s: %w", k, err)
		}
		out = append(out, b)
	}
	return out, nil
}
