package sqlstore

import (
	"context"
	"encoding/base64"
	"strings"

	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// stateList describes an environment-scoped table listed by state, oldest first:
// change requests and scheduled changes. Rows are keyed by (org, project,
// environment, id) and carry a state column; ids sort in creation order.
type stateList[T any] struct {
	table   string
	columns string
	scan    func(sc interface{ Scan(...any) error }) (T, error)
	id      func(T) string
}

// stateFilter narrows a stateList listing.
type stateFilter[T any] struct {
	// state: only rows in this state (0: any).
	state int32
	// where holds extra SQL conditions ("author_id = ?") joined by AND, with
	// their arguments in args.
	where []string
	args  []any
	// keep, when set, filters decoded rows (what SQL cannot see inside the body).
	// A page then still holds up to its size of kept rows: the listing reads on
	// until it has them or the table ends.
	keep func(T) bool
}

// listByState lists one page of l's rows in ref, oldest first, narrowed by f.
// The page token is the last id returned.
func listByState[T any](ctx context.Context, s *Store, l stateList[T], ref store.EnvRef, f stateFilter[T], p store.Page) ([]T, string, error) {
	size, after, err := pageArgs(p)
	if err != nil {
		return nil, "", err
	}
	conds := append([]string{"org = ?", "project = ?", "environment = ?", "id > ?"}, f.where...)
	args := []any{ref.Org, ref.Project, ref.Environment, nil}
	args = append(args, f.args...)
	if f.state != 0 {
		conds = append(conds, "state = ?")
		args = append(args, f.state)
	}
	query := `SELECT ` + l.columns + ` FROM ` + l.table + ` WHERE ` + strings.Join(conds, " AND ") + ` ORDER BY id LIMIT ?`
	var out []T
	for {
		args[3] = after
		rows, err := s.r().query(ctx, query, append(args, size+1)...)
		if err != nil {
			return nil, "", s.translate(err)
		}
		batch, err := collect(rows, l.scan)
		if err != nil {
			return nil, "", s.translate(err)
		}
		more := len(batch) > size
		if more {
			batch = batch[:size]
		}
		for i, v := range batch {
			after = l.id(v)
			if f.keep != nil && !f.keep(v) {
				continue
			}
			out = append(out, v)
			if len(out) == size {
				if i == len(batch)-1 && !more {
					return out, "", nil
				}
				return out, base64.RawURLEncoding.EncodeToString([]byte(after)), nil
			}
		}
		if !more {
			return out, "", nil
		}
	}
}
