package testpg_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/flagforge/flagforge/services/controlplane/internal/testpg"
)

func TestNewGivesEachTestItsOwnMigratedDatabase(t *testing.T) {
	t.Parallel()
	a, b := testpg.New(t), testpg.New(t)
	if a == b {
		t.Fatalf("two tests got the same database %s", a)
	}
	for _, u := range []string{a, testpg.AppURL(t, b)} {
		c, err := pgx.Connect(context.Background(), u)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		if err := c.QueryRow(context.Background(), "SELECT count(*) FROM audit_entries").Scan(&n); err != nil {
			t.Errorf("%s: schema missing: %v", u, err)
		}
		_ = c.Close(context.Background())
	}
}
