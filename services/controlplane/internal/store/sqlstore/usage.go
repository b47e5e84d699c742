package sqlstore

import (
	"context"
	"math"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// RecordUsage adds evaluation counts; a batch id seen before is ignored. Usage is
// telemetry, not an administrative change: it writes no audit entry or outbox row.
func (s *Store) RecordUsage(ctx context.Context, ref store.EnvRef, batchID string, counts []store.UsageCount) error {
	return s.inTx(ctx, func(t *Tx) error {
		if _, err := s.loadEnv(ctx, t.q(), ref, false); err != nil {
			return err
		}
		res, err := t.q().exec(ctx, `INSERT INTO usage_batches (org, project, environment, batch_id, created_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, ref.Org, ref.Project, ref.Environment, batchID, micros(t.now))
		if err != nil {
			return err
		}
		if n, err := affected(res); err != nil || n == 0 {
			return err
		}
		for _, c := range counts {
			minute := micros(c.Minute.UTC().Truncate(time.Minute))
			if _, err := t.q().exec(ctx, `INSERT INTO usage_counts (org, project, environment, flag, variant, minute, count, errors)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (org, project, environment, flag, minute, variant)
				DO UPDATE SET count = usage_counts.count + excluded.count, errors = usage_counts.errors + excluded.errors`,
				ref.Org, ref.Project, ref.Environment, c.Flag, c.Variant, minute, c.Count, c.Errors); err != nil {
				return err
			}
			if _, err := t.q().exec(ctx, `UPDATE flag_configs SET last_evaluated = ?
				WHERE org = ? AND project = ? AND environment = ? AND flag = ? AND last_evaluated < ?`,
				minute, ref.Org, ref.Project, ref.Environment, c.Flag, minute); err != nil {
				return err
			}
		}
		return nil
	})
}

// FlagUsage returns a flag's counts per variant and minute in [start, end).
func (s *Store) FlagUsage(ctx context.Context, ref store.EnvRef, flag string, start, end time.Time) ([]*adminv1.UsageBucket, error) {
	endMicros := micros(end)
	if end.IsZero() {
		endMicros = math.MaxInt64
	}
	rows, err := s.r().query(ctx, `SELECT variant, minute, count, errors FROM usage_counts
		WHERE org = ? AND project = ? AND environment = ? AND flag = ? AND minute >= ? AND minute < ?
		ORDER BY minute, variant`, ref.Org, ref.Project, ref.Environment, flag, micros(start), endMicros)
	if err != nil {
		return nil, s.translate(err)
	}
	out, err := collect(rows, func(sc interface{ Scan(...any) error }) (*adminv1.UsageBucket, error) {
		var b adminv1.UsageBucket
		var m int64
		err := sc.Scan(&b.Variant, &m, &b.Count, &b.Errors)
		b.Minute = timestamppb.New(fromMicros(m))
		return &b, err
	})
	if err != nil {
		return nil, s.translate(err)
	}
	return out, nil
}

// ProjectUsage sums the counts of every flag of the environment per bucket in SQL
// (integer division of the minute offset), so a list of 1,000 flags costs one
// query, not one per flag.
func (s *Store) ProjectUsage(ctx context.Context, ref store.EnvRef, start, end time.Time, bucket time.Duration) ([]*adminv1.FlagUsageSeries, error) {
	width := bucket.Microseconds()
	if width <= 0 || !end.After(start) {
		return nil, nil
	}
	n := int((end.Sub(start) + bucket - 1) / bucket)
	from := micros(start)
	rows, err := s.r().query(ctx, `SELECT flag, (minute - ?) / ? AS b, CAST(SUM(count) AS BIGINT) FROM usage_counts
		WHERE org = ? AND project = ? AND environment = ? AND minute >= ? AND minute < ?
		GROUP BY flag, b ORDER BY flag, b`, from, width, ref.Org, ref.Project, ref.Environment, from, micros(end))
	if err != nil {
		return nil, s.translate(err)
	}
	defer func() { _ = rows.Close() }()
	var out []*adminv1.FlagUsageSeries
	for rows.Next() {
		var flag string
		var b, count int64
		if err := rows.Scan(&flag, &b, &count); err != nil {
			return nil, s.translate(err)
		}
		if len(out) == 0 || out[len(out)-1].Flag != flag {
			out = append(out, &adminv1.FlagUsageSeries{Flag: flag, Counts: make([]int64, n)})
		}
		if b >= 0 && b < int64(n) {
			cur := out[len(out)-1]
			cur.Counts[b] += count
			cur.Total += count
		}
	}
	if err := rows.Err(); err != nil {
		return nil, s.translate(err)
	}
	return out, nil
}

// VariantUsage sums a flag's evaluations and errors per variant over the minutes
// starting at or after since (truncated to its minute), for sdk_errors guardrails.
func (s *Store) VariantUsage(ctx context.Context, ref store.EnvRef, flag string, since time.Time) ([]store.VariantTotal, error) {
	rows, err := s.r().query(ctx, `SELECT variant, CAST(SUM(count) AS BIGINT), CAST(SUM(errors) AS BIGINT) FROM usage_counts
		WHERE org = ? AND project = ? AND environment = ? AND flag = ? AND minute >= ?
		GROUP BY variant ORDER BY variant`, ref.Org, ref.Project, ref.Environment, flag, micros(since.UTC().Truncate(time.Minute)))
	if err != nil {
		return nil, s.translate(err)
	}
	out, err := collect(rows, func(sc interface{ Scan(...any) error }) (store.VariantTotal, error) {
		var v store.VariantTotal
		err := sc.Scan(&v.Variant, &v.Evaluations, &v.Errors)
		return v, err
	})
	if err != nil {
		return nil, s.translate(err)
	}
	return out, nil
}
