package server

import (
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"

	// Registers the proto codec that frameCodec delegates to.
	_ "google.golang.org/grpc/encoding/proto"

	"github.com/flagforge/flagforge/pkg/errs"
	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	"github.com/flagforge/flagforge/pkg/limits"
	"github.com/flagforge/flagforge/services/evaluator/internal/auth"
	"github.com/flagforge/flagforge/services/evaluator/internal/broadcast"
)

// closeGrace is how long a stream ended by the server waits for its closing
// message to be sent before the call returns anyway (a slow consumer's transport
// may be blocked on flow control; returning cancels the stream and unblocks it).
const closeGrace = 500 * time.Millisecond

// StreamManifest sends the manifest stream (server SDK keys only): the frames that
// bring the caller from from_version to the version held (deltas when the hub's
// ring covers them, else the signed manifest), then every published change and the
// hub's heartbeats. It ends with a StreamClosing message when the server drops the
// subscriber (slow_consumer: RESOURCE_EXHAUSTED; key_revoked: UNAUTHENTICATED) or
// drains (draining: OK).
func (s *Service) StreamManifest(req *evaluationv1.StreamManifestRequest, stream grpc.ServerStreamingServer[evaluationv1.StreamManifestResponse]) error {
	if s.hub == nil {
		return errs.E(errs.FailedPrecondition, "streaming is not enabled on this evaluator")
	}
	ctx := stream.Context()
	g, _, err := s.authenticate(ctx, s.now())
	if err != nil {
		return err
	}
	if g.Kind != auth.Server {
		return errs.E(errs.PermissionDenied, "StreamManifest needs a server SDK key")
	}
	sub, initial, err := s.hub.Subscribe(broadcast.Request{Grant: g, FromVersion: req.GetFromVersion()})
	if err != nil {
		return err
	}
	defer sub.Close()
	// A stream served to an HTTP/1.1 client through the gateway ends at the age
	// the gateway announces (limits.MaxAge), with a closing message.
	var expire <-chan time.Time
	if v := metadata.ValueFromIncomingContext(ctx, limits.MaxAgeMetadata); len(v) == 1 {
		if ms, err := strconv.ParseInt(v[0], 10, 64); err == nil && ms > 0 {
			t := time.NewTimer(time.Duration(ms) * time.Millisecond)
			defer t.Stop()
			expire = t.C
		}
	}
	sent := make(chan error, 1)
	go func() { sent <- pump(stream, sub, initial, expire) }()
	select {
	case err := <-sent:
		return err
	case <-sub.Done():
	}
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case err := <-sent:
		return err
	case <-t.C:
		return sub.Err()
	}
}

// pump sends initial, then the subscriber's frames, until the stream fails or the
// server ends it (then it sends the closing message, best effort), or expire
// fires (closing message max_age, then the stream ends without error).
func pump(stream grpc.ServerStream, sub *broadcast.Sub, initial []*broadcast.Frame, expire <-chan time.Time) error {
	for _, f := range initial {
		if err := stream.SendMsg(f); err != nil {
			return err
		}
	}
	frames, done := sub.Frames(), sub.Done()
	for {
		select {
		case f := <-frames:
			if err := stream.SendMsg(f); err != nil {
				return err
			}
		case <-done:
			reason := sub.Reason()
			_ = stream.SendMsg(broadcast.Closing(reason, closingMessage(reason)))
			return sub.Err()
		case <-expire:
			return stream.SendMsg(broadcast.Closing(broadcast.ReasonMaxAge, closingMessage(broadcast.ReasonMaxAge)))
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
	}
}

func closingMessage(reason string) string {
	switch reason {
	case broadcast.ReasonSlowConsumer:
		return "the stream fell too far behind; reconnect with from_version"
	case broadcast.ReasonKeyRevoked:
		return "the SDK key was revoked or expired"
	case broadcast.ReasonDraining:
		return "the evaluator is shutting down; reconnect with from_version"
	case broadcast.ReasonMaxAge:
		return "an HTTP/1.1 stream lasts at most FLAGFORGE_HTTP1_STREAM_MAX_AGE; reconnect with from_version"
	}
	return ""
}

// frameCodec is the gRPC proto codec, except that a *broadcast.Frame is sent as
// its pre-serialized bytes: every subscriber shares one serialization of each
// event.
type frameCodec struct{ proto encoding.CodecV2 }

func newFrameCodec() frameCodec { return frameCodec{proto: encoding.GetCodecV2("proto")} }

func (c frameCodec) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(*broadcast.Frame); ok {
		return mem.BufferSlice{mem.SliceBuffer(f.Bytes)}, nil
	}
	return c.proto.Marshal(v)
}

func (c frameCodec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }

func (frameCodec) Name() string { return "proto" }
