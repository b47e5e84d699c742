package bootstrap_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/auth"
	"github.com/flagforge/flagforge/services/controlplane/internal/bootstrap"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/sqlite"
)

func open(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ff.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func auditCount(t *testing.T, st *sqlite.Store, org string) int {
	t.Helper()
	es, _, err := st.ListAudit(context.Background(), org, store.AuditFilter{}, store.Page{Size: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// TestRunWithCallerTokenIsIdempotent is the FLAGFORGE_BOOTSTRAP_* path of serve:
// the first start creates organization, owner and token; later starts write nothing.
func TestRunWithCallerTokenIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := open(t)
	secret := "ffat_" + strings.Repeat("s", 40)
	first, err := bootstrap.Run(ctx, st, "acme", "admin@acme.test", secret)
	if err != nil {
		t.Fatal(err)
	}
	if !first.CreatedOrg || first.Token == nil || first.Secret != secret {
		t.Fatalf("first run: %+v", first)
	}
	p, err := st.Authenticate(ctx, auth.HashSecret(secret), time.Now())
	if err != nil || p.Org != "acme" || p.Member.GetEmail() != "admin@acme.test" {
		t.Fatalf("token: %+v, %v", p, err)
	}
	if len(p.Bindings) != 1 || p.Bindings[0].GetRole() != adminv1.Role_ROLE_OWNER {
		t.Fatalf("bindings: %v", p.Bindings)
	}
	n := auditCount(t, st, "acme")
	again, err := bootstrap.Run(ctx, st, "acme", "admin@acme.test", secret)
	if err != nil {
		t.Fatal(err)
	}
	if again.CreatedOrg || again.Token != nil || auditCount(t, st, "acme") != n {
		t.Fatalf("second run wrote: %+v", again)
	}
	// Without a secret (the bootstrap subcommand) a new owner token is minted.
	minted, err := bootstrap.Run(ctx, st, "acme", "admin@acme.test", "")
	if err != nil || minted.Token == nil || !strings.HasPrefix(minted.Secret, "ffat_") || minted.Secret == secret {
		t.Fatalf("minted: %+v, %v", minted, err)
	}
	// Another organization cannot claim the token.
	if _, err := bootstrap.Run(ctx, st, "globex", "root@globex.test", secret); err == nil {
		t.Fatal("globex claimed acme's token")
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	good := "ffat_" + strings.Repeat("x", 32)
	tests := []struct {
		c  bootstrap.Config
		ok bool
	}{
		{bootstrap.Config{}, true},
		{bootstrap.Config{Org: "acme", Email: "a@acme.test", Token: good}, true},
		{bootstrap.Config{Org: "acme"}, false},
		{bootstrap.Config{Org: "acme", Email: "a@acme.test", Token: "ffat_short"}, false},
		{bootstrap.Config{Org: "acme", Email: "a@acme.test", Token: strings.Repeat("x", 40)}, false},
	}
	for _, tt := range tests {
		if err := tt.c.Validate(); (err == nil) != tt.ok {
			t.Errorf("%+v: %v", tt.c, err)
		}
	}
	if _, err := bootstrap.Run(context.Background(), nil, "Not A Slug", "a@acme.test", ""); err == nil {
		t.Error("bad org accepted")
	}
}
