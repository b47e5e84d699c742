package sqlstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"

	"google.golang.org/protobuf/proto"

	"github.com/flagforge/flagforge/pkg/errs"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

var deterministic = proto.MarshalOptions{Deterministic: true}

// requestHash fingerprints a create request for idempotency: the operation's
// inputs, in order.
func requestHash(parts ...any) []byte {
	h := sha256.New()
	for _, p := range parts {
		switch v := p.(type) {
		case proto.Message:
			if !isNilMessage(v) {
				b, _ := deterministic.Marshal(v)
				h.Write(b)
			}
		case string:
			h.Write([]byte(v))
		case []byte:
			h.Write(v)
		}
		h.Write([]byte{0})
	}
	return h.Sum(nil)
}

// create runs a create in one transaction, honouring m.IdempotencyKey: a retry
// with the same key and request returns the stored first result without writing;
// the same key with another request is errs.AlreadyExists.
func create[T proto.Message](ctx context.Context, s *Store, m store.WriteMeta, org, op string, reqHash []byte,
	fresh func() T, fn func(t *Tx) (T, error)) (T, error) {
	var out T
	err := s.inTx(ctx, func(t *Tx) error {
		if m.IdempotencyKey != "" {
			var h, res []byte
			err := t.q().row(ctx, `SELECT request_hash, result FROM idempotency_keys
				WHERE org = ? AND operation = ? AND key = ?`, org, op, m.IdempotencyKey).Scan(&h, &res)
			switch {
			case err == nil:
				if !bytes.Equal(h, reqHash) {
					return errs.E(errs.AlreadyExists, "idempotency key %q was already used for a different request", m.IdempotencyKey)
				}
				v := fresh()
				if err := proto.Unmarshal(res, v); err != nil {
					return err
				}
				out = v
				return nil
			case !errors.Is(err, sql.ErrNoRows):
				return err
			}
		}
		v, err := fn(t)
		if err != nil {
			return err
		}
		out = v
		if m.IdempotencyKey == "" {
			return nil
		}
		b, err := deterministic.Marshal(v)
		if err != nil {
			return err
		}
		_, err = t.q().exec(ctx, `INSERT INTO idempotency_keys (org, operation, key, request_hash, result, created_at)
			VALUES (?, ?, ?, ?, ?, ?)`, org, op, m.IdempotencyKey, reqHash, b, micros(t.now))
		return err
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return out, nil
}

// checkRevision compares the revision read with the one the caller based the
// change on.
func checkRevision(what, key string, have, want int64) error {
	if have != want {
		return stale(what, key, have, want)
	}
	return nil
}
