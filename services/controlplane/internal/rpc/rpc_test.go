package rpc

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/actor"
	"github.com/flagforge/flagforge/services/controlplane/internal/authz"
	"github.com/flagforge/flagforge/services/controlplane/internal/server"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestEveryRegisteredMethodIsDeclared: each method the server serves has an authz
// table entry (an undeclared one would be denied to everybody), and the table
// declares nothing the server does not serve.
func TestEveryRegisteredMethodIsDeclared(t *testing.T) {
	t.Parallel()
	gs, err := NewServer(Options{})
	if err != nil {
		t.Fatal(err)
	}
	server.Register(gs, nil, nil)
	// The app registers the manifest download, the explain API, seen contexts and
	// impact previews beside the admin services.
	adminv1.RegisterManifestServiceServer(gs, adminv1.UnimplementedManifestServiceServer{})
	adminv1.RegisterExplainServiceServer(gs, adminv1.UnimplementedExplainServiceServer{})
	adminv1.RegisterSeenContextServiceServer(gs, adminv1.UnimplementedSeenContextServiceServer{})
	adminv1.RegisterImpactServiceServer(gs, adminv1.UnimplementedImpactServiceServer{})
	served := map[string]bool{}
	for svc, info := range gs.GetServiceInfo() {
		for _, m := range info.Methods {
			name := "/" + svc + "/" + m.Name
			served[name] = true
			if _, ok := authz.Lookup(name); !ok {
				t.Errorf("%s is registered but missing from authz.Table", name)
			}
		}
	}
	for name := range authz.Table {
		if !served[name] {
			t.Errorf("authz.Table declares %s, which is not registered", name)
		}
	}
	if len(served) == 0 {
		t.Fatal("no methods registered")
	}
}

type authFunc func(ctx context.Context, authorization, org string) (*actor.Principal, error)

func (f authFunc) Authenticate(ctx context.Context, authorization, org string) (*actor.Principal, error) {
	return f(ctx, authorization, org)
}

type denyAll struct{}

func (denyAll) Allow(string) error {
	return &errs.Error{Kind: errs.ResourceExhausted, Message: "slow down", RetryAfter: 1}
}

func owner(ctx context.Context, _, _ string) (*actor.Principal, error) {
	return &actor.Principal{Org: "acme", Member: &adminv1.Member{Id: "m"}, Bindings: []*adminv1.RoleBinding{{Role: adminv1.Role_ROLE_OWNER, Scope: &adminv1.Scope{}}}}, nil
}

func call(t *testing.T, o Options, method string, req any, md metadata.MD, handler grpc.UnaryHandler) (any, error) {
	t.Helper()
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	obs := &observer{log: o.Logger, metrics: m}
	acc := &access{auth: o.Auth, limiter: o.Limiter, self: map[string]bool{}}
	for _, svc := range o.SelfAuthenticated {
		acc.self[svc] = true
	}
	ctx := metadata.NewIncomingContext(context.Background(), md)
	info := &grpc.UnaryServerInfo{FullMethod: method}
	return obs.unary(ctx, req, info, func(ctx context.Context, req any) (any, error) {
		return acc.unary(ctx, req, info, handler)
	})
}

func TestAccessInterceptor(t *testing.T) {
	t.Parallel()
	ok := func(ctx context.Context, _ any) (any, error) {
		if actor.PrincipalFrom(ctx) == nil || actor.RequestID(ctx) == "" {
			return nil, errors.New("principal or request id missing")
		}
		return "ok", nil
	}
	get := adminv1.ProjectService_GetProject_FullMethodName
	tests := []struct {
		name    string
		opts    Options
		method  string
		req     any
		want    codes.Code
		handler grpc.UnaryHandler
	}{
		{"declared method, allowed", Options{Auth: authFunc(owner)}, get, &adminv1.GetProjectRequest{Org: "acme", Project: "web"}, codes.OK, ok},
		{"undeclared method is denied", Options{Auth: authFunc(owner)}, "/flagforge.admin.v1.NoSuchService/DoSomething", &adminv1.GetProjectRequest{}, codes.PermissionDenied, ok},
		{"other organization is not found", Options{Auth: authFunc(owner)}, get, &adminv1.GetProjectRequest{Org: "globex", Project: "web"}, codes.NotFound, ok},
		{"authentication failure", Options{Auth: authFunc(func(context.Context, string, string) (*actor.Principal, error) {
			return nil, errs.E(errs.Unauthenticated, "no")
		})}, get, &adminv1.GetProjectRequest{Org: "acme"}, codes.Unauthenticated, ok},
		{"rate limited", Options{Auth: authFunc(owner), Limiter: denyAll{}}, get, &adminv1.GetProjectRequest{Org: "acme"}, codes.ResourceExhausted, ok},
		{"self-authenticated service passes to its handler", Options{Auth: authFunc(func(context.Context, string, string) (*actor.Principal, error) {
			return nil, errs.E(errs.Unauthenticated, "no")
		}), SelfAuthenticated: []string{"flagforge.sync.v1.SyncService"}}, "/flagforge.sync.v1.SyncService/ReportUsage", &adminv1.GetProjectRequest{}, codes.OK,
			func(context.Context, any) (any, error) { return "ok", nil }},
		{"a service is not self-authenticated by name prefix", Options{Auth: authFunc(owner), SelfAuthenticated: []string{"flagforge.sync.v1.SyncService"}},
			"/flagforge.sync.v1.SyncServiceX/ReportUsage", &adminv1.GetProjectRequest{}, codes.PermissionDenied, ok},
		{"handler errors are mapped", Options{Auth: authFunc(owner)}, get, &adminv1.GetProjectRequest{Org: "acme"}, codes.Aborted,
			func(context.Context, any) (any, error) { return nil, errs.E(errs.Aborted, "stale") }},
	}
	for _, tt := range tests {
		_, err := call(t, tt.opts, tt.method, tt.req, metadata.MD{}, tt.handler)
		if got := status.Code(err); got != tt.want {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.want)
		}
	}
}

// TestInternalErrorsAreLoggedNotShown: the cause of an internal error goes to the
// log with the request id; the caller sees a generic message.
func TestInternalErrorsAreLoggedNotShown(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	_, err := call(t, Options{Auth: authFunc(owner), Logger: log}, adminv1.ProjectService_GetProject_FullMethodName,
		&adminv1.GetProjectRequest{Org: "acme"}, metadata.Pairs("x-request-id", "req-42"),
		func(context.Context, any) (any, error) { return nil, errors.New("disk on fire") })
	st := status.Convert(err)
	if st.Code() != codes.Internal || strings.Contains(st.Message(), "disk") {
		t.Fatalf("caller saw %v", err)
	}
	if out := buf.String(); !strings.Contains(out, "disk on fire") || !strings.Contains(out, `"request_id":"req-42"`) || !strings.Contains(out, `"level":"ERROR"`) {
		t.Fatalf("log: %s", out)
	}
}

func TestRequestIDs(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		keep bool
	}{{"abc-123", true}, {"", false}, {strings.Repeat("x", 129), false}, {"bad\nid", false}} {
		md := metadata.MD{}
		if tt.in != "" {
			md = metadata.Pairs("x-request-id", tt.in)
		}
		got := requestID(metadata.NewIncomingContext(context.Background(), md))
		if (got == tt.in) != tt.keep || got == "" {
			t.Errorf("request id %q -> %q", tt.in, got)
		}
	}
}
