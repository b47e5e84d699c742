package checkpoint

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/flagforge/flagforge/pkg/manifest"
)

// RecoveryKind is the kind of a recovery marker's payload; a checkpoint's
// payload has none, so one is never taken for the other.
const RecoveryKind = "audit-recovery"

// Recovery is a signed recovery marker: the record, written by
// `recover-from-snapshots` with the signing key, that a database restore lost
// the newest entries of an organization's chain. The restored database ends at
// entry RestoredTo (hash RestoredHash; 0 and "" when nothing survived) and the
// entries RestoredTo+1..LostThrough, the newest of them checkpointed with the
// hash LostHash, are gone. Verify accepts a checkpoint the database contradicts
// only when a marker covers it: written before the marker, inside its lost range,
// and the database still holding the marker's RestoredTo entry with its hash.
// Every checkpoint written after the recovery must match as before, so deleting
// or rewriting entries after a recovery, or before RestoredTo, is still found;
// and a marker that does not verify is itself a finding.
type Recovery struct {
	Kind         string    `json:"kind"`
	Org          string    `json:"org"`
	RestoredTo   int64     `json:"restored_to"`
	RestoredHash string    `json:"restored_hash"`
	LostThrough  int64     `json:"lost_through"`
	LostHash     string    `json:"lost_hash"`
	Time         time.Time `json:"time"`
}

// SealRecovery signs r and returns the object to store.
func SealRecovery(s *manifest.Signer, r Recovery) ([]byte, error) {
	r.Kind = RecoveryKind
	payload, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	sig, err := s.Checkpoint(payload)
	if err != nil {
		return nil, err
	}
	return json.Marshal(envelope{Payload: payload, KeyID: s.KeyID(), Signature: sig})
}

// OpenRecovery verifies a stored recovery marker and returns it.
func OpenRecovery(v *manifest.Verifier, data []byte) (Recovery, error) {
	var e envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return Recovery{}, fmt.Errorf("checkpoint: not a recovery marker: %w", err)
	}
	if err := v.Checkpoint(e.KeyID, e.Payload, e.Signature); err != nil {
		return Recovery{}, fmt.Errorf("checkpoint: recovery marker: %w", err)
	}
	var r Recovery
	if err := json.Unmarshal(e.Payload, &r); err != nil {
		return Recovery{}, fmt.Errorf("checkpoint: recovery marker payload: %w", err)
	}
	if r.Kind != RecoveryKind {
		return Recovery{}, fmt.Errorf("checkpoint: recovery marker payload is of kind %q, want %q", r.Kind, RecoveryKind)
	}
	return r, nil
}

// MarkRecovery compares org's restored chain with its newest checkpoint and,
// when the database ends before it (the restore lost entries that were
// checkpointed), writes a signed recovery marker for the lost range and returns
// it (ok true). It writes nothing when nothing checkpointed was lost, or when the
// database contradicts the checkpoint otherwise (a rewrite is never excused).
func MarkRecovery(ctx context.Context, chains Chains, storage Storage, s *manifest.Signer, v *manifest.Verifier, org string, now time.Time) (Recovery, bool, error) {
	res, err := Verify(ctx, chains, storage, v, org)
	if err != nil || res.OK || res.Checkpoints == 0 {
		return Recovery{}, false, err
	}
	head, hash, err := chains.AuditHead(ctx, org)
	if err != nil {
		return Recovery{}, false, err
	}
	if res.Newest.Sequence <= head {
		return Recovery{}, false, nil // not a loss at the end: a rewrite
	}
	r := Recovery{Kind: RecoveryKind, Org: org, RestoredTo: head, RestoredHash: hash,
		LostThrough: res.Newest.Sequence, LostHash: res.Newest.Hash, Time: now.UTC()}
	data, err := SealRecovery(s, r)
	if err != nil {
		return Recovery{}, false, err
	}
	if err := storage.PutRecoveryMarker(ctx, org, r.Time, data); err != nil {
		return Recovery{}, false, err
	}
	// The marker must make the chain verify; if it does not, the database
	// contradicts an older checkpoint too, which no marker excuses.
	after, err := Verify(ctx, chains, storage, v, org)
	if err != nil {
		return Recovery{}, false, err
	}
	if !after.OK {
		return r, true, fmt.Errorf("checkpoint: %s: the recovery marker was written but the chain still does not verify: %s", org, after.Problem)
	}
	return r, true, nil
}

// recoveries reads and verifies org's markers, keeping those whose restored
// entry the database still holds with its hash. A marker that does not verify is
// reported as a problem.
func recoveries(ctx context.Context, chains Chains, storage Storage, v *manifest.Verifier, org string) ([]Recovery, string, error) {
	all, err := storage.RecoveryMarkers(ctx, org)
	if err != nil {
		return nil, "", err
	}
	var out []Recovery
	for i, data := range all {
		r, err := OpenRecovery(v, data)
		if err != nil || r.Org != org {
			return nil, fmt.Sprintf("recovery marker %d of %d does not verify (%v): the markers themselves were altered", i+1, len(all), err), nil
		}
		if r.RestoredTo > 0 {
			hash, found, err := chains.AuditHashAt(ctx, org, r.RestoredTo)
			if err != nil {
				return nil, "", err
			}
			if !found || hash != r.RestoredHash {
				continue // the database no longer holds what was restored: the marker does not apply
			}
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, "", nil
}

// covering returns the marker that excuses checkpoint h (nil: none): h was
// written before the marker and records an entry of its lost range (with the
// lost head's hash when it is the lost head).
func covering(markers []Recovery, h Head) *Recovery {
	for i := range markers {
		m := &markers[i]
		if h.Sequence <= m.RestoredTo || h.Sequence > m.LostThrough || h.Time.After(m.Time) {
			continue
		}
		if h.Sequence == m.LostThrough && h.Hash != m.LostHash {
			continue
		}
		return m
	}
	return nil
}
