package server

import (
	"context"
	"runtime"
	"slices"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	"github.com/flagforge/flagforge/services/evaluator/internal/auth"
	"github.com/flagforge/flagforge/services/evaluator/internal/engine"
	"github.com/flagforge/flagforge/services/evaluator/internal/reqcodec"
)

// The gRPC Evaluate hot path. The generated handler has the codec fill an
// EvaluateRequest, whose context is a google.protobuf.Struct that the engine then
// copies into its own map: that decoding was a third of a served call. Here the
// codec decodes the request straight into the engine's context (package
// reqcodec) and falls back to proto.Unmarshal for anything else, so the accepted
// messages and the errors stay the proto codec's.

// evaluateCall is an Evaluate request as unaryCodec decodes it: req without its
// context, and ctx the context already built; or (ctx nil) req as proto.Unmarshal
// filled it.
type evaluateCall struct {
	req evaluationv1.EvaluateRequest
	ctx *engine.Context
}

// unaryCodec is frameCodec, decoding *evaluateCall by hand.
type unaryCodec struct{ frameCodec }

func newUnaryCodec() unaryCodec { return unaryCodec{newFrameCodec()} }

func (c unaryCodec) Unmarshal(data mem.BufferSlice, v any) error {
	call, ok := v.(*evaluateCall)
	if !ok {
		return c.frameCodec.Unmarshal(data, v)
	}
	var b []byte
	if len(data) == 1 {
		b = data[0].ReadOnlyData()
	} else {
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		defer buf.Free()
		b = buf.ReadOnlyData()
	}
	var fast reqcodec.Evaluate
	if reqcodec.DecodeEvaluateProto(b, &fast) {
		if ctx, err := engine.ContextFromAttrs(fast.Attrs); err == nil {
			call.req.FlagKey, call.req.Type, call.req.DefaultValue = fast.FlagKey, fast.Type, fast.Default
			call.ctx = ctx
			return nil
		}
	}
	return c.frameCodec.Unmarshal(data, &call.req)
}

// serviceDesc is the EvaluationService descriptor to register svc with: the
// generated one, with Evaluate decoded by unaryCodec when svc is a *Service.
func serviceDesc(svc evaluationv1.EvaluationServiceServer) *grpc.ServiceDesc {
	desc := evaluationv1.EvaluationService_ServiceDesc
	if _, ok := svc.(*Service); !ok {
		return &desc
	}
	desc.Methods = slices.Clone(desc.Methods)
	for i := range desc.Methods {
		if desc.Methods[i].MethodName == "Evaluate" {
			desc.Methods[i].Handler = evaluateHandler
		}
	}
	return &desc
}

// evaluateHandler is the generated Evaluate handler with an *evaluateCall for the
// request message.
func evaluateHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	call := new(evaluateCall)
	if err := dec(call); err != nil {
		return nil, err
	}
	s := srv.(*Service)
	if interceptor == nil {
		return s.evaluateCall(ctx, call)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: evaluationv1.EvaluationService_Evaluate_FullMethodName}
	return interceptor(ctx, call, info, func(ctx context.Context, req any) (any, error) {
		return s.evaluateCall(ctx, req.(*evaluateCall))
	})
}

func (s *Service) evaluateCall(ctx context.Context, call *evaluateCall) (*evaluationv1.EvaluateResponse, error) {
	key, _ := auth.BearerKey(ctx)
	return s.evaluateWith(key, &call.req, call.ctx)
}

// unaryOptions are the gRPC server options of the unary hot path: stream workers
// that serve calls on goroutines whose stacks have already grown (a fresh
// goroutine per call grew its stack on every call: newstack/copystack were a
// fifth of a call's CPU). Calls beyond the workers still get their own
// goroutine, so long-lived streams never starve unary calls (a stream holds its
// worker until it ends). There are many workers per core because a worker stays
// busy while its call waits for a core or for the connection's writer: under
// h2load (500 calls in flight, load average 30-60) 94% of calls overflowed to fresh
// goroutines with 2 workers per core, 53% with 32, 2.5% with 128 (newstack: 15%,
// 9%, 4% of the CPU). An idle worker costs its grown stack (8-32 KB; 256 workers
// on 2 cores did not change the RSS under load).
func unaryOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.NumStreamWorkers(uint32(workersPerCore * runtime.GOMAXPROCS(0)))}
}

// workersPerCore is the number of gRPC stream workers per GOMAXPROCS.
const workersPerCore = 128
