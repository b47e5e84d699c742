package auth_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/flagforge/flagforge/pkg/errs"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/services/evaluator/internal/auth"
)

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	hash := func(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }
	ix := auth.BuildIndex([]*manifestv1.Manifest{{
		Org: "acme", Project: "web", Environment: "production",
		SdkKeys: []*manifestv1.SdkKey{
			{Id: "s", Hash: hash("server"), Kind: manifestv1.SdkKeyKind_SDK_KEY_KIND_SERVER},
			{Id: "c", Hash: hash("client"), Kind: manifestv1.SdkKeyKind_SDK_KEY_KIND_CLIENT},
			{Id: "old", Hash: hash("old"), Kind: manifestv1.SdkKeyKind_SDK_KEY_KIND_SERVER, ExpiresAt: timestamppb.New(now)},
			{Id: "rotating", Hash: hash("rotating"), Kind: manifestv1.SdkKeyKind_SDK_KEY_KIND_CLIENT, ExpiresAt: timestamppb.New(now.Add(time.Minute))},
		},
	}})
	tests := []struct {
		name   string
		header []string
		kind   auth.Kind
	}{
		{"a server key is granted server access", []string{"Bearer server"}, auth.Server},
		{"a client key is granted client access", []string{"bearer client"}, auth.Client},
		{"a key before its expiry still works", []string{"Bearer rotating"}, auth.Client},
		{"a key at its expiry is refused", []string{"Bearer old"}, 0},
		{"an unknown key is refused", []string{"Bearer nope"}, 0},
		{"no key is refused", nil, 0},
		{"another scheme is refused", []string{"Basic server"}, 0},
		{"two keys are refused", []string{"Bearer server", "Bearer client"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := metadata.NewIncomingContext(context.Background(), metadata.MD{"authorization": tt.header})
			g, err := ix.Authenticate(ctx, now)
			if tt.kind == 0 {
				if !errors.Is(err, errs.Unauthenticated) {
					t.Fatalf("got %v, want Unauthenticated", err)
				}
				return
			}
			if err != nil || g.Kind != tt.kind || g.Environment != "acme/web/production" {
				t.Fatalf("got %+v, %v", g, err)
			}
		})
	}
}
