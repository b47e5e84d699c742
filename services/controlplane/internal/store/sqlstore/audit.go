package sqlstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// change is what one write records: an outbox row and an audit entry.
type change struct {
	// org, project, env scope the outbox row (see store.OutboxEvent).
	org, project, env string
	action            string
	resourceType      string
	resource          string
	// before and after are the resource around the change; nil is JSON null.
	before, after any
}

// record appends the outbox row and the audit entry of a write. It is the last
// statement of every write, so the audit-chain lock is held as briefly as possible.
func (t *Tx) record(ctx context.Context, m store.WriteMeta, c change) error {
	if m.Action != "" {
		c.action = m.Action
	}
	if err := t.keepRevision(ctx, m, c); err != nil {
		return err
	}
	x := t.q()
	if _, err := x.exec(ctx, `INSERT INTO outbox (org, project, environment, kind, resource, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`, c.org, c.project, c.env, c.action, c.resource, micros(t.now)); err != nil {
		return err
	}
	before, err := canonicalJSON(c.before)
	if err != nil {
		return err
	}
	after, err := canonicalJSON(c.after)
	if err != nil {
		return err
	}
	id, err := newID()
	if err != nil {
		return err
	}
	e := auditRow{
		ID: id, Org: c.org, ActorID: m.ActorID, ActorName: m.ActorName,
		Action: c.action, ResourceType: c.resourceType, Resource: c.resource,
		Before: before, After: after, RequestID: m.RequestID, Comment: m.Comment,
		Time: micros(t.now),
	}
	// From here to commit the organization's chain is locked: keep it short.
	if t.s.d.LockAuditChain != nil {
		if err := t.s.d.LockAuditChain(ctx, t.tx, c.org); err != nil {
			return err
		}
	}
	t.chained = true
	if t.s.d.SHA256Hex != nil {
		return t.appendAuditSQL(ctx, &e)
	}
	var seq int64
	var prev string
	err = x.row(ctx, `SELECT seq, hash FROM audit_entries WHERE org = ? ORDER BY seq DESC LIMIT 1`, c.org).Scan(&seq, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	e.Seq, e.PreviousHash = seq+1, prev
	e.Hash = e.computeHash()
	_, err = x.exec(ctx, `INSERT INTO audit_entries (id, org, seq, actor_id, actor_name, action, resource_type,
		resource, before_json, after_json, request_id, comment, time, previous_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, e.Org, e.Seq, e.ActorID, e.ActorName, e.Action, e.ResourceType, e.Resource,
		e.Before, e.After, e.RequestID, e.Comment, e.Time, e.PreviousHash, e.Hash)
	return err
}

// appendAuditSQL reads the chain head and appends the entry in one statement, the
// database computing the hash, so that the chain lock is held for one round trip
// and the commit. The hashed bytes are exactly those of computeHash.
func (t *Tx) appendAuditSQL(ctx context.Context, e *auditRow) error {
	head, tail := e.canonicalParts()
	sum := t.s.d.SHA256Hex(`p.hash || ? || CAST(p.seq + 1 AS TEXT) || ?`)
	return t.q().row(ctx, `INSERT INTO audit_entries (id, org, seq, actor_id, actor_name, action, resource_type,
		resource, before_json, after_json, request_id, comment, time, previous_hash, hash)
		SELECT ?, ?, p.seq + 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, p.hash, `+sum+`
		FROM (SELECT seq, hash FROM (
			SELECT seq, hash FROM (SELECT seq, hash FROM audit_entries WHERE org = ? ORDER BY seq DESC LIMIT 1) last
			UNION ALL SELECT 0, ''
		) heads ORDER BY seq DESC LIMIT 1) p
		RETURNING seq, previous_hash, hash`,
		e.ID, e.Org, e.ActorID, e.ActorName, e.Action, e.ResourceType, e.Resource,
		e.Before, e.After, e.RequestID, e.Comment, e.Time, head, tail, e.Org).Scan(&e.Seq, &e.PreviousHash, &e.Hash)
}

// canonicalJSON renders v (a proto message, a map of them, or nil) as compact JSON
// with sorted object keys, so that the stored text, and thus the hash, is stable.
// protojson output is deliberately unstable, hence the round trip.
func canonicalJSON(v any) (string, error) {
	raw, err := toJSON(v)
	if err != nil {
		return "", err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return "", err
	}
	out, err := json.Marshal(tree)
	if err != nil {
		return "", err
	}
	return string(out), nil
}

func toJSON(v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return []byte("null"), nil
	case json.RawMessage:
		return v, nil
	case proto.Message:
		if isNilMessage(v) {
			return []byte("null"), nil
		}
		return protojson.Marshal(v)
	case map[string]proto.Message:
		obj := make(map[string]json.RawMessage, len(v))
		for k, m := range v {
			b, err := toJSON(m)
			if err != nil {
				return nil, err
			}
			obj[k] = b
		}
		return json.Marshal(obj)
	default:
		return nil, fmt.Errorf("audit: cannot render %T", v)
	}
}

func isNilMessage(m proto.Message) bool {
	return m == nil || !m.ProtoReflect().IsValid()
}

// auditRow is an audit entry as stored.
type auditRow struct {
	ID, Org                                  string
	Seq                                      int64
	ActorID, ActorName, Action, ResourceType string
	Resource, Before, After                  string
	RequestID, Comment                       string
	Time                                     int64
	PreviousHash, Hash                       string
}

// canonicalParts returns the canonical JSON of the entry's fields other than the
// hashes, split around the sequence number: head + strconv(seq) + tail. The field
// order (alphabetical) is part of the on-disk format: changing it breaks every
// existing chain.
func (e *auditRow) canonicalParts() (head, tail string) {
	doc := struct {
		Action       string          `json:"action"`
		ActorID      string          `json:"actor_id"`
		ActorName    string          `json:"actor_name"`
		After        json.RawMessage `json:"after"`
		Before       json.RawMessage `json:"before"`
		Comment      string          `json:"comment"`
		ID           string          `json:"id"`
		Org          string          `json:"org"`
		RequestID    string          `json:"request_id"`
		Resource     string          `json:"resource"`
		ResourceType string          `json:"resource_type"`
	}{
		e.Action, e.ActorID, e.ActorName, rawOrString(e.After), rawOrString(e.Before),
		e.Comment, e.ID, e.Org, e.RequestID, e.Resource, e.ResourceType,
	}
	b, _ := json.Marshal(doc) // cannot fail: rawOrString guarantees valid JSON
	tm, _ := json.Marshal(fromMicros(e.Time).Format(time.RFC3339Nano))
	return string(b[:len(b)-1]) + `,"sequence":`, `,"time":` + string(tm) + `}`
}

// rawOrString keeps valid JSON as is and quotes anything else (a tampered row must
// be reported as broken, not make hashing fail).
func rawOrString(s string) json.RawMessage {
	if json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	q, _ := json.Marshal(s)
	return q
}

// computeHash is hex(sha256(previous_hash || canonical JSON of the other fields)).
func (e *auditRow) computeHash() string {
	head, tail := e.canonicalParts()
	h := sha256.New()
	h.Write([]byte(e.PreviousHash))
	h.Write([]byte(head))
	h.Write([]byte(strconv.FormatInt(e.Seq, 10)))
	h.Write([]byte(tail))
	return hex.EncodeToString(h.Sum(nil))
}

const auditColumns = `id, org, seq, actor_id, actor_name, action, resource_type, resource,
	before_json, after_json, request_id, comment, time, previous_hash, hash`

func scanAudit(sc interface{ Scan(...any) error }) (*auditRow, error) {
	var e auditRow
	err := sc.Scan(&e.ID, &e.Org, &e.Seq, &e.ActorID, &e.ActorName, &e.Action, &e.ResourceType,
		&e.Resource, &e.Before, &e.After, &e.RequestID, &e.Comment, &e.Time, &e.PreviousHash, &e.Hash)
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// proto converts the row for the API, computing the diff between before and after.
func (e *auditRow) proto() *adminv1.AuditEntry {
	out := &adminv1.AuditEntry{
		Id: e.ID, Sequence: e.Seq, ActorId: e.ActorID, ActorName: e.ActorName, Action: e.Action,
		ResourceType: e.ResourceType, Resource: e.Resource, RequestId: e.RequestID,
		Comment: e.Comment, Time: timestamppb.New(fromMicros(e.Time)), Hash: e.Hash,
		PreviousHash: e.PreviousHash,
	}
	var before, after any
	if v, tree, ok := jsonValue(e.Before); ok {
		out.Before, before = v, tree
	}
	if v, tree, ok := jsonValue(e.After); ok {
		out.After, after = v, tree
	}
	out.Diff = diffJSON(before, after)
	return out
}

// jsonValue parses stored JSON; null and unparsable text give ok=false.
func jsonValue(s string) (*structpb.Value, any, bool) {
	if s == "" || s == "null" {
		return nil, nil, false
	}
	var tree any
	if err := json.Unmarshal([]byte(s), &tree); err != nil {
		return nil, nil, false
	}
	v, err := structpb.NewValue(tree)
	if err != nil {
		return nil, nil, false
	}
	return v, tree, true
}

// ListAudit lists an organization's entries, newest first.
func (s *Store) ListAudit(ctx context.Context, org string, f store.AuditFilter, p store.Page) ([]*adminv1.AuditEntry, string, error) {
	size, after, err := pageArgs(p)
	if err != nil {
		return nil, "", err
	}
	where := []string{"org = ?"}
	args := []any{org}
	if after != "" {
		seq, err := parseInt(after)
		if err != nil {
			return nil, "", err
		}
		where = append(where, "seq < ?")
		args = append(args, seq)
	}
	if f.ResourceType != "" {
		where = append(where, "resource_type = ?")
		args = append(args, f.ResourceType)
	}
	if f.Resource != "" {
		if strings.HasSuffix(f.Resource, "/") {
			where = append(where, `resource LIKE ? ESCAPE '\'`)
			args = append(args, likeEscape(f.Resource)+"%")
		} else {
			where = append(where, "resource = ?")
			args = append(args, f.Resource)
		}
	}
	if f.ActorID != "" {
		where = append(where, "actor_id = ?")
		args = append(args, f.ActorID)
	}
	if f.Action != "" {
		where = append(where, "action = ?")
		args = append(args, f.Action)
	}
	if !f.Start.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, micros(f.Start))
	}
	if !f.End.IsZero() {
		where = append(where, "time < ?")
		args = append(args, micros(f.End))
	}
	args = append(args, size+1)
	rows, err := s.r().query(ctx, `SELECT `+auditColumns+` FROM audit_entries WHERE `+
		strings.Join(where, " AND ")+` ORDER BY seq DESC LIMIT ?`, args...)
	if err != nil {
		return nil, "", s.translate(err)
	}
	defer func() { _ = rows.Close() }()
	var out []*adminv1.AuditEntry
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, "", s.translate(err)
		}
		out = append(out, e.proto())
	}
	if err := rows.Err(); err != nil {
		return nil, "", s.translate(err)
	}
	out, next := cut(out, size, func(e *adminv1.AuditEntry) string { return fmt.Sprint(e.GetSequence()) })
	return out, next, nil
}

// GetAudit returns one entry of the organization.
func (s *Store) GetAudit(ctx context.Context, org, id string) (*adminv1.AuditEntry, error) {
	e, err := scanAudit(s.r().row(ctx, `SELECT `+auditColumns+` FROM audit_entries WHERE org = ? AND id = ?`, org, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("audit entry", id)
	}
	if err != nil {
		return nil, s.translate(err)
	}
	return e.proto(), nil
}

// VerifyAudit recomputes the organization's chain from its first entry and reports
// the first entry whose sequence, link or hash does not verify.
func (s *Store) VerifyAudit(ctx context.Context, org string) (*store.AuditVerification, error) {
	res := &store.AuditVerification{OK: true}
	err := s.readTx(ctx, func(x q) error {
		rows, err := x.query(ctx, `SELECT `+auditColumns+` FROM audit_entries WHERE org = ? ORDER BY seq`, org)
		if err != nil {
			return err
		}
		defer func() { _ = rows.Close() }()
		prev := ""
		for rows.Next() {
			e, err := scanAudit(rows)
			if err != nil {
				return err
			}
			res.Checked++
			problem := ""
			switch {
			case e.Seq != res.Checked:
				problem = fmt.Sprintf("sequence %d where %d was expected (an entry is missing or inserted)", e.Seq, res.Checked)
			case e.PreviousHash != prev:
				problem = fmt.Sprintf("previous_hash %q does not match the hash %q of entry %d", e.PreviousHash, prev, e.Seq-1)
			case e.computeHash() != e.Hash:
				problem = fmt.Sprintf("hash %q does not match the entry's content (recomputed %q): the entry was modified", e.Hash, e.computeHash())
			}
			if problem != "" {
				res.OK, res.FirstBroken, res.Problem = false, e.proto(), problem
				return nil
			}
			prev = e.Hash
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// likeEscape escapes LIKE wildcards (used with ESCAPE '\').
func likeEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(s)
}

// AuditHead returns the newest entry of an organization's audit chain: its
// sequence and hash (0 and "" for an empty chain).
func (s *Store) AuditHead(ctx context.Context, org string) (int64, string, error) {
	var seq int64
	var hash string
	err := s.r().row(ctx, `SELECT seq, hash FROM audit_entries WHERE org = ? ORDER BY seq DESC LIMIT 1`, org).Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", nil
	}
	return seq, hash, s.translate(err)
}

// AuditHashAt returns the hash of entry seq of an organization's chain (ok false
// when there is no such entry).
func (s *Store) AuditHashAt(ctx context.Context, org string, seq int64) (string, bool, error) {
	var hash string
	err := s.r().row(ctx, `SELECT hash FROM audit_entries WHERE org = ? AND seq = ?`, org, seq).Scan(&hash)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, s.translate(err)
	}
	return hash, true, nil
}
