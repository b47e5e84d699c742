// Package snapshot keeps a copy of every published manifest version in object
// storage, for disaster recovery and audit: a local directory by default, or an
// S3-compatible bucket.
//
// Objects are named {org}/{project}/{environment}/{version:020d}.manifest (the
// zero-padded version sorts lexically) and hold the SignedManifest protobuf
// binary exactly as published. Put is idempotent: a version's bytes never change.
// Prune (retention.go) deletes the snapshots a Retention does not keep; the
// newest of every environment is always kept.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Store writes and reads snapshots.
type Store interface {
	// Put stores data as the snapshot of version of org/project/environment.
	Put(ctx context.Context, target string, version uint64, data []byte) error
	// Get reads a snapshot; a missing one wraps fs.ErrNotExist.
	Get(ctx context.Context, target string, version uint64) ([]byte, error)
}

// Name is the object name of a version of target ("org/project/environment").
func Name(target string, version uint64) (string, error) {
	parts := strings.Split(target, "/")
	if len(parts) != 3 {
		return "", fmt.Errorf("snapshot: target %q is not org/project/environment", target)
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || strings.ContainsAny(p, `\`) {
			return "", fmt.Errorf("snapshot: target %q has an invalid segment", target)
		}
	}
	return fmt.Sprintf("%s/%020d.manifest", target, version), nil
}

// Dir stores snapshots under a local directory.
type Dir struct{ root string }

// NewDir returns a Dir rooted at root (created when missing).
func NewDir(root string) (*Dir, error) {
	if root == "" {
		return nil, errors.New("snapshot: empty directory")
	}
	if err := os.MkdirAll(root, 0o750); err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return &Dir{root: root}, nil
}

// Put writes the file through a temporary name, fsyncs it and renames it into
// place, so a reader or a crash never sees a partial snapshot.
func (d *Dir) Put(_ context.Context, target string, version uint64, data []byte) error {
	name, err := Name(target, version)
	if err != nil {
		return err
	}
	return d.write(name, data)
}

// write stores data under name through a temporary file, fsynced and renamed.
func (d *Dir) write(name string, data []byte) error {
	path := filepath.Join(d.root, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}

// Get reads a snapshot file.
func (d *Dir) Get(_ context.Context, target string, version uint64) ([]byte, error) {
	name, err := Name(target, version)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(d.root, filepath.FromSlash(name)))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("snapshot: %s: %w", name, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return b, nil
}

// CheckpointName is the object name of an organization's audit checkpoint at
// sequence seq: {org}/_audit/{seq:020d}.checkpoint, beside the organization's
// manifest snapshots ("_audit" is never a project key).
func CheckpointName(org string, seq int64) (string, error) {
	if org == "" || org == "." || org == ".." || strings.ContainsAny(org, `/\`) {
		return "", fmt.Errorf("snapshot: organization %q is not a valid object segment", org)
	}
	return fmt.Sprintf("%s/_audit/%020d.checkpoint", org, seq), nil
}

// PutCheckpoint writes an audit checkpoint (atomically, like Put).
func (d *Dir) PutCheckpoint(_ context.Context, org string, seq int64, data []byte) error {
	name, err := CheckpointName(org, seq)
	if err != nil {
		return err
	}
	return d.write(name, data)
}

// Checkpoints lists the sequences of an organization's checkpoints, ascending.
func (d *Dir) Checkpoints(_ context.Context, org string) ([]int64, error) {
	name, err := CheckpointName(org, 0)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(filepath.Join(d.root, filepath.Dir(filepath.FromSlash(name))))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	var out []int64
	for _, e := range ents {
		if seq, ok := checkpointSeq(e.Name()); ok {
			out = append(out, seq)
		}
	}
	return out, nil
}

// GetCheckpoint reads a checkpoint; a missing one wraps fs.ErrNotExist.
func (d *Dir) GetCheckpoint(_ context.Context, org string, seq int64) ([]byte, error) {
	name, err := CheckpointName(org, seq)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(d.root, filepath.FromSlash(name)))
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	return b, nil
}

// checkpointSeq parses a checkpoint object's base name.
func checkpointSeq(base string) (int64, bool) {
	s, ok := strings.CutSuffix(base, ".checkpoint")
	if !ok || len(s) != 20 {
		return 0, false
	}
	var seq int64
	if _, err := fmt.Sscanf(s, "%d", &seq); err != nil {
		return 0, false
	}
	return seq, true
}
