package limits_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/flagforge/flagforge/pkg/limits"
)

// testService streams 64 KiB messages as fast as the peer takes them and
// reports when a stream ends; its unary call takes unaryDelay.
type testService struct {
	testgrpc.UnimplementedTestServiceServer
	ended      chan error
	unaryDelay time.Duration
}

func (s *testService) StreamingOutputCall(_ *testgrpc.StreamingOutputCallRequest, st grpc.ServerStreamingServer[testgrpc.StreamingOutputCallResponse]) error {
	msg := &testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: make([]byte, 64<<10)}}
	for {
		if err := st.Send(msg); err != nil {
			s.ended <- err
			return err
		}
	}
}

func (s *testService) UnaryCall(_ context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	time.Sleep(s.unaryDelay)
	return &testgrpc.SimpleResponse{Payload: req.GetPayload()}, nil
}

// serveGuarded serves svc with the guard of c on a loopback port.
func serveGuarded(t *testing.T, c limits.Config, svc *testService) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	guard := c.GRPCGuard(nil)
	s := grpc.NewServer(guard.ServerOptions()...)
	testgrpc.RegisterTestServiceServer(s, svc)
	go func() { _ = s.Serve(guard.Listener(l)) }()
	t.Cleanup(s.Stop)
	return l.Addr().String()
}

func TestAServerStreamThePeerStopsReadingIsCutAfterTheWriteTimeout(t *testing.T) {
	t.Parallel()
	svc := &testService{ended: make(chan error, 2)}
	addr := serveGuarded(t, limits.Config{StreamWriteTimeout: 500 * time.Millisecond}, svc)
	// Fixed 64 KiB windows (no BDP growth): the server blocks once the client
	// stops reading.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(65535), grpc.WithInitialConnWindowSize(65535))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	client := testgrpc.NewTestServiceClient(conn)

	t.Run("a reader is never cut", func(t *testing.T) {
		st, err := client.StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
		if err != nil {
			t.Fatal(err)
		}
		n, until := 0, time.Now().Add(2*time.Second) // 4 write timeouts
		for time.Now().Before(until) {
			if _, err := st.Recv(); err != nil {
				t.Fatalf("after %d messages: %v", n, err)
			}
			n++
		}
		select {
		case err := <-svc.ended:
			t.Fatalf("the stream of a reader ended: %v", err)
		default:
		}
		t.Logf("received %d messages of 64 KiB in 2 s", n)
	})
	// The reader's stream ended with its subtest (canceled).
	select {
	case err := <-svc.ended:
		t.Logf("the reader's stream ended with its subtest: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("the reader's canceled stream did not end")
	}
	stalled, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(65535), grpc.WithInitialConnWindowSize(65535))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stalled.Close() }()
	st, err := testgrpc.NewTestServiceClient(stalled).StreamingOutputCall(t.Context(), &testgrpc.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	select {
	case err := <-svc.ended:
		took := time.Since(stopped)
		t.Logf("the stalled stream's send failed %s after the peer stopped reading: %v", took.Round(time.Millisecond), err)
		if took > 3*time.Second {
			t.Errorf("cut after %s, want about the 500 ms write timeout", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream of a peer that stopped reading is still open after 10 s")
	}
}

// grpcFrame is a gRPC length-prefixed message.
func grpcFrame(msg []byte) []byte {
	out := make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(out[1:5], uint32(len(msg)))
	copy(out[5:], msg)
	return out
}

// startCall opens an HTTP/2 connection to addr and the headers of a UnaryCall.
func startCall(t *testing.T, addr string) (net.Conn, *http2.Framer) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", "/grpc.testing.TestService/UnaryCall"},
		{":authority", addr}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	// Read what the server sends (it pings only after PingInterval, 20 s).
	go func() { _, _ = io.Copy(io.Discard, c) }()
	return c, fr
}

func TestARequestMessageTrickledOnAnOpenConnectionIsCut(t *testing.T) {
	t.Parallel()
	svc := &testService{ended: make(chan error, 1), unaryDelay: time.Second}
	addr := serveGuarded(t, limits.Config{ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: 300 * time.Millisecond}, svc)

	t.Run("a handler slower than the read timeout is not cut", func(t *testing.T) {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = conn.Close() }()
		if _, err := testgrpc.NewTestServiceClient(conn).UnaryCall(t.Context(), &testgrpc.SimpleRequest{}); err != nil {
			t.Fatalf("a call whose handler takes 1 s (read timeout 300 ms): %v", err)
		}
	})

	c, fr := startCall(t, addr)
	msg := grpcFrame(bytes.Repeat([]byte{0}, 64)) // never completes: its content does not matter
	start := time.Now()
	for i := 0; ; i++ {
		if i >= len(msg)-1 {
			t.Fatal("the whole message was trickled without being cut")
		}
		_ = c.SetWriteDeadline(time.Now().Add(time.Second))
		if err := fr.WriteData(1, false, msg[i:i+1]); err != nil {
			took := time.Since(start)
			t.Logf("cut %s after the headers (%d bytes trickled): %v", took.Round(time.Millisecond), i, err)
			if took > 3*time.Second {
				t.Errorf("cut after %s, want about the 300 ms read timeout", took)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
