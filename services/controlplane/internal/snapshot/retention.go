package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
)

// Retention says which manifest snapshots of an environment are kept: the Keep
// highest versions, and for each of the last Days days (UTC, today included) the
// highest version written that day. Everything else is deleted by Prune. The
// newest snapshot of every environment is always kept (Keep >= 1), so disaster
// recovery (internal/recovery), which starts from it, always finds it.
//
// A snapshot's day is the time the store reports for it (the file's
// modification time, the object's LastModified), which is when the publisher
// wrote it: a bucket copied elsewhere carries the copy's times.
type Retention struct {
	// Keep is how many of the highest versions are kept (>= 1).
	Keep int
	// Days is how many days keep their highest version (0: none beyond Keep).
	Days int
}

// Validate checks r.
func (r Retention) Validate() error {
	if r.Keep < 1 {
		return fmt.Errorf("snapshot: retention must keep at least 1 version per environment, not %d", r.Keep)
	}
	if r.Days < 0 {
		return fmt.Errorf("snapshot: retention days %d is negative", r.Days)
	}
	return nil
}

// Entry is one stored snapshot.
type Entry struct {
	Version uint64
	// Written is when the store wrote it.
	Written time.Time
}

// Pruner lists and deletes manifest snapshots (Dir and S3 implement it).
type Pruner interface {
	// Entries lists every manifest snapshot by target ("org/project/environment").
	Entries(ctx context.Context) (map[string][]Entry, error)
	// Delete removes the snapshots of target at versions (missing ones are not an
	// error).
	Delete(ctx context.Context, target string, versions []uint64) error
}

// Expired returns the versions of entries that r does not keep at now, in
// ascending order.
func (r Retention) Expired(entries []Entry, now time.Time) []uint64 {
	sorted := append([]Entry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Version > sorted[j].Version })
	keep := map[uint64]bool{}
	for i := 0; i < len(sorted) && i < r.Keep; i++ {
		keep[sorted[i].Version] = true
	}
	if r.Days > 0 {
		today := now.UTC().Truncate(24 * time.Hour)
		oldest := today.AddDate(0, 0, -(r.Days - 1))
		seen := map[time.Time]bool{}
		for _, e := range sorted { // highest version first: the first of each day wins
			day := e.Written.UTC().Truncate(24 * time.Hour)
			if day.Before(oldest) || seen[day] {
				continue
			}
			seen[day] = true
			keep[e.Version] = true
		}
	}
	var out []uint64
	for _, e := range sorted {
		if !keep[e.Version] {
			out = append(out, e.Version)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Prune deletes, in every environment of p, the snapshots r does not keep at
// now, and returns how many it deleted. It stops at the first failure (what was
// deleted stays deleted; the next run goes on).
func Prune(ctx context.Context, p Pruner, r Retention, now time.Time) (int, error) {
	if err := r.Validate(); err != nil {
		return 0, err
	}
	all, err := p.Entries(ctx)
	if err != nil {
		return 0, err
	}
	targets := make([]string, 0, len(all))
	for t := range all {
		targets = append(targets, t)
	}
	sort.Strings(targets)
	deleted := 0
	for _, t := range targets {
		expired := r.Expired(all[t], now)
		if len(expired) == 0 {
			continue
		}
		if err := p.Delete(ctx, t, expired); err != nil {
			return deleted, err
		}
		deleted += len(expired)
	}
	return deleted, nil
}

// Entries walks the directory tree.
func (d *Dir) Entries(_ context.Context) (map[string][]Entry, error) {
	out := map[string][]Entry{}
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
		target, v, ok := parseName(filepath.ToSlash(rel))
		if !ok {
			return nil
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted meanwhile
		}
		if err != nil {
			return err
		}
		out[target] = append(out[target], Entry{Version: v, Written: info.ModTime()})
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("snapshot: list %s: %w", d.root, err)
	}
	return out, nil
}

// Delete removes the files.
func (d *Dir) Delete(_ context.Context, target string, versions []uint64) error {
	for _, v := range versions {
		name, err := Name(target, v)
		if err != nil {
			return err
		}
		if err := os.Remove(filepath.Join(d.root, filepath.FromSlash(name))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("snapshot: %w", err)
		}
	}
	return nil
}

// Entries lists the objects under the prefix.
func (s *S3) Entries(ctx context.Context) (map[string][]Entry, error) {
	out := map[string][]Entry{}
	for obj := range s.c.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("snapshot: S3 list %s/%s: %w", s.bucket, s.prefix, obj.Err)
		}
		if target, v, ok := parseName(strings.TrimPrefix(obj.Key, s.prefix)); ok {
			out[target] = append(out[target], Entry{Version: v, Written: obj.LastModified})
		}
	}
	return out, nil
}

// Delete removes the objects with multi-object deletes (up to 1,000 keys each).
func (s *S3) Delete(ctx context.Context, target string, versions []uint64) error {
	objs := make(chan minio.ObjectInfo, len(versions))
	for _, v := range versions {
		name, err := s.ObjectName(target, v)
		if err != nil {
			return err
		}
		objs <- minio.ObjectInfo{Key: name}
	}
	close(objs)
	for e := range s.c.RemoveObjects(ctx, s.bucket, objs, minio.RemoveObjectsOptions{}) {
		if e.Err != nil {
			return fmt.Errorf("snapshot: S3 delete %s: %w", e.ObjectName, e.Err)
		}
	}
	return nil
}

var (
	_ Pruner = (*Dir)(nil)
	_ Pruner = (*S3)(nil)
)
