package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/services/controlplane/internal/app"
	"github.com/flagforge/flagforge/services/controlplane/internal/bootstrap"
	"github.com/flagforge/flagforge/services/controlplane/internal/httpapi"
	"github.com/flagforge/flagforge/services/controlplane/internal/ratelimit"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/postgres"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/sqlite"
	"github.com/flagforge/flagforge/services/controlplane/internal/syncsvc"
	"github.com/flagforge/flagforge/services/controlplane/internal/testpg"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// cp is a running control plane over a fresh SQLite database, with organization
// "acme" bootstrapped (owner token in owner).
type cp struct {
	t     testing.TB
	st    store.Store
	base  string
	conn  *grpc.ClientConn
	owner string
	// signer signs the manifests; evaluators of the tests trust its public key.
	signer *manifest.Signer
}

// syncToken is the sync service token of the tests' control planes.
const syncToken = "sync-token-for-the-app-tests"

// newSigner returns a fresh manifest signing key.
func newSigner(t testing.TB) *manifest.Signer {
	t.Helper()
	privPEM, _, err := manifest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	priv, err := manifest.ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	s, err := manifest.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// backends are the stores the end-to-end tests run against.
var backends = []struct {
	name string
	open func(t testing.TB) store.Store
}{
	{"sqlite", func(t testing.TB) store.Store {
		st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "flagforge.db"))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}},
	{"postgres", func(t testing.TB) store.Store {
		// The service connects as a login role in flagforge_app, as deployed.
		st, err := postgres.Open(context.Background(), testpg.AppURL(t, testpg.New(t)))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}},
}

// eachBackend runs f against a control plane over every backend, in parallel.
func eachBackend(t *testing.T, rl ratelimit.Config, f func(t *testing.T, c *cp)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			f(t, startWith(t, b.open(t), rl))
		})
	}
}

// start runs a control plane over SQLite.
func start(t testing.TB, rl ratelimit.Config) *cp {
	t.Helper()
	return startWith(t, backends[0].open(t), rl)
}

func startWith(t testing.TB, st store.Store, rl ratelimit.Config, opts ...func(*app.Config)) *cp {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	res, err := bootstrap.Run(ctx, st, "acme", "admin@acme.test", "")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	signer := newSigner(t)
	cfg := app.Config{
		GRPCAddr: "127.0.0.1:0", GRPCShutdownTimeout: 5 * time.Second,
		HTTP: httpapi.Config{Addr: "127.0.0.1:0", ShutdownTimeout: 5 * time.Second}, RateLimit: rl,
		Sync: syncsvc.Config{Token: syncToken}, Manifests: app.Manifests{Signer: signer},
	}
	for _, o := range opts {
		o(&cfg)
	}
	a, err := app.New(ctx, cfg, st, log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	conn, err := grpc.NewClient(a.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		_ = st.Close()
	})
	return &cp{t: t, st: st, base: "http://" + a.HTTPAddr(), conn: conn, owner: res.Secret, signer: signer}
}

// as returns a context carrying token as gRPC credentials.
func as(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

// resp is a REST answer.
type resp struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// call makes a REST call; body is marshalled as JSON unless it is a string.
func (c *cp) call(method, path, token string, body any, headers ...string) resp {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			c.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer func() { _ = r.Body.Close() }()
	raw, _ := io.ReadAll(r.Body)
	out := resp{status: r.StatusCode, header: r.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &out.body)
	return out
}

// want fails unless the status is code.
func (r resp) want(t testing.TB, code int) resp {
	t.Helper()
	if r.status != code {
		t.Fatalf("status %d, want %d: %s", r.status, code, r.raw)
	}
	return r
}

// get walks a JSON path of keys and indexes.
func (r resp) get(path ...any) any {
	var v any = r.body
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

// fieldViolation returns the field named by a 400 body's BadRequest detail.
func (r resp) fieldViolation() string {
	details, _ := r.body["details"].([]any)
	for _, d := range details {
		m, _ := d.(map[string]any)
		if fvs, ok := m["fieldViolations"].([]any); ok && len(fvs) > 0 {
			f, _ := fvs[0].(map[string]any)["field"].(string)
			return f
		}
	}
	return ""
}

// member creates a member of org with role (org-wide unless scope is set) and
// returns a token acting as it.
func (c *cp) member(ownerToken, org, email string, role adminv1.Role, scope *adminv1.Scope) (id, token string) {
	c.t.Helper()
	ms := adminv1.NewMemberServiceClient(c.conn)
	orgRole := role
	if scope != nil {
		orgRole = adminv1.Role_ROLE_UNSPECIFIED
	}
	m, err := ms.CreateMember(as(ownerToken), &adminv1.CreateMemberRequest{Org: org, Member: &adminv1.Member{Email: email}, Role: orgRole})
	if err != nil {
		c.t.Fatal(err)
	}
	if scope != nil {
		if _, err := ms.GrantRole(as(ownerToken), &adminv1.GrantRoleRequest{Org: org, Binding: &adminv1.RoleBinding{MemberId: m.GetMember().GetId(), Role: role, Scope: scope}}); err != nil {
			c.t.Fatal(err)
		}
	}
	tok, err := adminv1.NewApiTokenServiceClient(c.conn).CreateApiToken(as(ownerToken), &adminv1.CreateApiTokenRequest{Org: org, Name: email, MemberId: m.GetMember().GetId()})
	if err != nil {
		c.t.Fatal(err)
	}
	return m.GetMember().GetId(), tok.GetSecret()
}

// project creates project "web" with flag "new-ui" in acme.
func (c *cp) project() {
	c.t.Helper()
	c.call("POST", "/v1/orgs/acme/projects", c.owner, map[string]any{"project": map[string]any{"key": "web", "name": "Web"}}).want(c.t, 200)
	c.call("POST", "/v1/orgs/acme/projects/web/flags", c.owner, map[string]any{"flag": map[string]any{"key": "new-ui", "type": "FLAG_TYPE_BOOLEAN"}}).want(c.t, 200)
}
