package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/minio/minio-go/v7"
)

// Lister finds the newest snapshot of every environment: what disaster recovery
// (internal/recovery) starts from. Dir and S3 implement it.
type Lister interface {
	// Newest maps every target ("org/project/environment") that has a snapshot to
	// its highest version. It reads the whole listing (every stored version): a
	// recovery-time operation, not one for the serving path.
	Newest(ctx context.Context) (map[string]uint64, error)
}

// parseName splits an object name {org}/{project}/{environment}/{version:020d}.manifest
// (relative to the store's root or prefix); ok is false for anything else
// (checkpoints, temporary files).
func parseName(name string) (target string, version uint64, ok bool) {
	parts := strings.Split(name, "/")
	if len(parts) != 4 {
		return "", 0, false
	}
	base, found := strings.CutSuffix(parts[3], ".manifest")
	if !found || len(base) != 20 {
		return "", 0, false
	}
	v, err := strconv.ParseUint(base, 10, 64)
	if err != nil || v == 0 {
		return "", 0, false
	}
	target = strings.Join(parts[:3], "/")
	if _, err := Name(target, v); err != nil {
		return "", 0, false
	}
	return target, v, true
}

// Newest walks the directory tree.
func (d *Dir) Newest(_ context.Context) (map[string]uint64, error) {
	out := map[string]uint64{}
	err := filepath.WalkDir(d.root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(d.root, path)
		if err != nil {
			return err
		}
		if target, v, ok := parseName(filepath.ToSlash(rel)); ok && v > out[target] {
			out[target] = v
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("snapshot: list %s: %w", d.root, err)
	}
	return out, nil
}

// Newest lists the objects under the prefix.
func (s *S3) Newest(ctx context.Context) (map[string]uint64, error) {
	out := map[string]uint64{}
	for obj := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("snapshot: S3 list %s/%s: %w", s.bucket, s.prefix, obj.Err)
		}
		if target, v, ok := parseName(strings.TrimPrefix(obj.Key, s.prefix)); ok && v > out[target] {
			out[target] = v
		}
	}
	return out, nil
}

var (
	_ Lister = (*Dir)(nil)
	_ Lister = (*S3)(nil)
)
