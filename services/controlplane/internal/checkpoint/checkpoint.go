// Package checkpoint anchors each organization's audit hash chain outside the
// database: on a period it signs the chain head (sequence and hash) with the
// manifest signing key and writes it beside the manifest snapshots (a directory
// or an S3 bucket). Verify compares the database with the checkpoints: entries
// deleted after a checkpoint, or a chain rewritten (even recomputed end to end
// so that it verifies on its own), no longer match a signed head.
//
// The guarantee reaches up to the newest checkpoint: entries written after it
// (at most one Interval of history) can still be deleted unnoticed by someone
// who can write the database but not the object storage.
package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"time"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// Config tunes the writer.
type Config struct {
	// Interval between checkpoints of every organization's chain head: the window
	// of history a database superuser could still delete unnoticed. 0 disables.
	Interval time.Duration `env:"AUDIT_CHECKPOINT_INTERVAL, default=1m"`
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Interval < 0 {
		return errors.New("checkpoint: AUDIT_CHECKPOINT_INTERVAL must be >= 0")
	}
	return nil
}

// Storage keeps checkpoints outside the database (snapshot.Dir and snapshot.S3).
type Storage interface {
	PutCheckpoint(ctx context.Context, org string, seq int64, data []byte) error
	Checkpoints(ctx context.Context, org string) ([]int64, error)
	GetCheckpoint(ctx context.Context, org string, seq int64) ([]byte, error)
	PutRecoveryMarker(ctx context.Context, org string, at time.Time, data []byte) error
	RecoveryMarkers(ctx context.Context, org string) ([][]byte, error)
}

// Chains is what checkpoints read of the database.
type Chains interface {
	ListOrgs(ctx context.Context, keys []string, p store.Page) ([]*adminv1.Organization, string, error)
	AuditHead(ctx context.Context, org string) (int64, string, error)
	AuditHashAt(ctx context.Context, org string, seq int64) (string, bool, error)
}

// Head is the signed content of a checkpoint.
type Head struct {
	Org      string    `json:"org"`
	Sequence int64     `json:"sequence"`
	Hash     string    `json:"hash"`
	Time     time.Time `json:"time"`
}

// envelope is the stored object: the payload (Head as JSON) and its signature.
type envelope struct {
	Payload   []byte `json:"payload"`
	KeyID     string `json:"key_id"`
	Signature []byte `json:"signature"`
}

// Seal signs h and returns the object to store.
func Seal(s *manifest.Signer, h Head) ([]byte, error) {
	payload, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	sig, err := s.Checkpoint(payload)
	if err != nil {
		return nil, err
	}
	return json.Marshal(envelope{Payload: payload, KeyID: s.KeyID(), Signature: sig})
}

// Open verifies a stored checkpoint and returns its head.
func Open(v *manifest.Verifier, data []byte) (Head, error) {
	var e envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return Head{}, fmt.Errorf("checkpoint: not a checkpoint: %w", err)
	}
	if err := v.Checkpoint(e.KeyID, e.Payload, e.Signature); err != nil {
		return Head{}, fmt.Errorf("checkpoint: %w", err)
	}
	var h Head
	if err := json.Unmarshal(e.Payload, &h); err != nil {
		return Head{}, fmt.Errorf("checkpoint: payload: %w", err)
	}
	return h, nil
}

// Writer writes the checkpoints.
type Writer struct {
	cfg     Config
	chains  Chains
	storage Storage
	signer  *manifest.Signer
	log     *slog.Logger
	now     func() time.Time
	last    map[string]int64
}

// NewWriter returns a writer (now nil: time.Now).
func NewWriter(cfg Config, chains Chains, storage Storage, signer *manifest.Signer, log *slog.Logger, now func() time.Time) *Writer {
	if now == nil {
		now = time.Now
	}
	return &Writer{cfg: cfg, chains: chains, storage: storage, signer: signer, log: log, now: now, last: map[string]int64{}}
}

// Run writes checkpoints every Interval until ctx ends.
func (w *Writer) Run(ctx context.Context) {
	if w.cfg.Interval <= 0 {
		return
	}
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		if err := w.WriteOnce(ctx); err != nil && ctx.Err() == nil {
			w.log.ErrorContext(ctx, "audit checkpoint not written", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// WriteOnce checkpoints the head of every organization's chain that moved since
// the last checkpoint this writer wrote.
func (w *Writer) WriteOnce(ctx context.Context) error {
	var firstErr error
	for page := (store.Page{Size: 100}); ; {
		orgs, next, err := w.chains.ListOrgs(ctx, nil, page)
		if err != nil {
			return err
		}
		for _, o := range orgs {
			if err := w.write(ctx, o.GetKey()); err != nil && firstErr == nil {
				firstErr = fmt.Errorf("organization %s: %w", o.GetKey(), err)
			}
		}
		if next == "" {
			return firstErr
		}
		page.Token = next
	}
}

func (w *Writer) write(ctx context.Context, org string) error {
	seq, hash, err := w.chains.AuditHead(ctx, org)
	if err != nil || seq == 0 || w.last[org] == seq {
		return err
	}
	data, err := Seal(w.signer, Head{Org: org, Sequence: seq, Hash: hash, Time: w.now().UTC()})
	if err != nil {
		return err
	}
	if err := w.storage.PutCheckpoint(ctx, org, seq, data); err != nil {
		return err
	}
	w.last[org] = seq
	return nil
}

// Result is the comparison of one organization's chain with its checkpoints.
type Result struct {
	// Checkpoints is how many were found; 0 means nothing to compare with.
	Checkpoints int
	// Newest is the newest valid checkpoint (zero when none).
	Newest Head
	// OK is false when the database does not match a checkpoint; Problem then
	// names the missing or altered range.
	OK      bool
	Problem string
	// Recovered are the signed recovery markers that excused checkpoints of
	// entries a restore lost (see Recovery), oldest first.
	Recovered []Recovery
}

// Verify compares org's chain in the database with its checkpoints, newest
// first. The database must hold every checkpointed entry with the checkpointed
// hash (so nothing up to the newest checkpoint was deleted or rewritten),
// except the entries of a range that a signed recovery marker records as lost in
// a restore (see Recovery). A checkpoint or marker that does not verify (bad
// signature, unknown key) is itself a finding.
func Verify(ctx context.Context, chains Chains, storage Storage, v *manifest.Verifier, org string) (Result, error) {
	seqs, err := storage.Checkpoints(ctx, org)
	if err != nil {
		return Result{}, err
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] > seqs[j] })
	res := Result{Checkpoints: len(seqs), OK: true}
	if len(seqs) == 0 {
		return res, nil
	}
	head, _, err := chains.AuditHead(ctx, org)
	if err != nil {
		return Result{}, err
	}
	markers, problem, err := recoveries(ctx, chains, storage, v, org)
	if err != nil {
		return Result{}, err
	}
	if problem != "" {
		return Result{Checkpoints: len(seqs), Problem: problem}, nil
	}
	excused := func(h Head) bool {
		m := covering(markers, h)
		if m == nil {
			return false
		}
		for _, r := range res.Recovered {
			if r == *m {
				return true
			}
		}
		res.Recovered = append(res.Recovered, *m)
		return true
	}
	var bad *Head // the newest checkpoint the database contradicts
	for i, seq := range seqs {
		data, err := storage.GetCheckpoint(ctx, org, seq)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return Result{}, err
		}
		h, err := Open(v, data)
		if err != nil || h.Org != org || h.Sequence != seq {
			return Result{Checkpoints: len(seqs), Problem: fmt.Sprintf("checkpoint %d does not verify (%v): the checkpoints themselves were altered", seq, err)}, nil
		}
		if i == 0 {
			res.Newest = h
		}
		hash, found, err := chains.AuditHashAt(ctx, org, seq)
		if err != nil {
			return Result{}, err
		}
		if found && hash == h.Hash {
			// The database agrees with this checkpoint: everything up to it is intact
			// (the chain links every entry to its predecessor).
			if bad != nil {
				res.OK, res.Problem = false, describe(*bad, head, h.Sequence)
			}
			return res, nil
		}
		if bad == nil && !excused(h) {
			hc := h
			bad = &hc
		}
	}
	if bad != nil {
		res.OK, res.Problem = false, describe(*bad, head, 0)
	}
	return res, nil
}

// describe names what the database lost or changed against checkpoint cp, given
// the database's head and the newest checkpoint it still agrees with (0: none).
func describe(cp Head, dbHead int64, intactUpTo int64) string {
	at := cp.Time.UTC().Format(time.RFC3339)
	if dbHead < cp.Sequence {
		return fmt.Sprintf("entries %d..%d are missing: the database ends at entry %d, the signed checkpoint of %s records entry %d (hash %s)",
			dbHead+1, cp.Sequence, dbHead, at, cp.Sequence, cp.Hash)
	}
	return fmt.Sprintf("entries %d..%d were rewritten: entry %d no longer has the hash %s signed in the checkpoint of %s (the chain was recomputed)",
		intactUpTo+1, cp.Sequence, cp.Sequence, cp.Hash, at)
}
