package usage

import (
	"context"

	"google.golang.org/grpc/metadata"
)

// withToken adds the service token to an outgoing call.
func withToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}
