package platform

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	syncv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/sync/v1"
)

// createBigFlag creates flag "big" whose rule lists n user ids, so that a signed
// manifest of the environment is far larger than a gRPC flow-control window.
func (em *embedded) createBigFlag(n int) {
	em.t.Helper()
	em.admin("POST", "/v1/orgs/"+org+"/projects/"+project+"/flags", map[string]any{"flag": map[string]any{
		"key": "big", "type": "FLAG_TYPE_BOOLEAN"}})
	ids := make([]any, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("user-%06d", i)
	}
	cur := em.admin("GET", envPath+"/flags/big", nil)
	em.admin("PUT", envPath+"/flags/big", map[string]any{"revision": cur["config"].(map[string]any)["revision"],
		"config": map[string]any{"on": true, "offVariant": "off", "defaultServe": map[string]any{"variant": "off"},
			"rules": []any{map[string]any{"id": "listed", "serve": map[string]any{"variant": "on"},
				"clauses": []any{map[string]any{"attribute": "targetingKey", "operator": "OPERATOR_IN", "values": ids}}}}}})
}

// stalledStream opens a stream of method over a connection with fixed 64 KiB
// flow-control windows (no growth), reads its first message and then nothing
// more. It returns the connection's local port.
func stalledStream(t *testing.T, addr, token string, open func(context.Context, *grpc.ClientConn) (func() error, error)) int {
	t.Helper()
	var mu sync.Mutex
	var local net.Addr
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(65535), grpc.WithInitialConnWindowSize(65535),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", a)
			if err == nil {
				mu.Lock()
				local = c.LocalAddr()
				mu.Unlock()
			}
			return c, err
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+token)
	recv, err := open(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := recv(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return local.(*net.TCPAddr).Port
}

// TestGRPCStreamsThePeerStopsReadingAreCutAfterTheWriteTimeout opens the
// evaluator's StreamManifest and the control plane's SyncManifests from a client
// that reads the first message and then stops reading (its process is alive and
// answers pings). The snapshot of a large manifest fills the flow-control
// windows, the heartbeats that follow block, and each server closes the
// connection once a message has waited FLAGFORGE_STREAM_WRITE_TIMEOUT (2 s);
// the evaluator's open-stream count returns to zero.
func TestGRPCStreamsThePeerStopsReadingAreCutAfterTheWriteTimeout(t *testing.T) {
	const writeTimeout = 2 * time.Second
	em := newEmbedded(t, "FLAGFORGE_STREAM_WRITE_TIMEOUT="+writeTimeout.String(),
		"FLAGFORGE_STREAM_HEARTBEAT=200ms", "FLAGFORGE_SYNC_HEARTBEAT=200ms")
	em.createBigFlag(40000)
	waitFor(t, 15*time.Second, "the evaluator serves flag big", func() bool {
		_, out, err := call("POST", "http://"+em.eval.httpAddr+"/v1/evaluate", em.sdkKey,
			map[string]any{"flagKey": "big", "context": map[string]any{"targetingKey": "user-039999"}})
		return err == nil && out["reason"] == "TARGETING_MATCH"
	})
	tests := []struct {
		name, addr, token string
		open              func(context.Context, *grpc.ClientConn) (func() error, error)
	}{
		{"evaluator StreamManifest", em.eval.grpcAddr, em.sdkKey, func(ctx context.Context, c *grpc.ClientConn) (func() error, error) {
			st, err := evaluationv1.NewEvaluationServiceClient(c).StreamManifest(ctx, &evaluationv1.StreamManifestRequest{})
			return func() error { _, err := st.Recv(); return err }, err
		}},
		{"control plane SyncManifests", em.cpGRPC, em.syncToken, func(ctx context.Context, c *grpc.ClientConn) (func() error, error) {
			st, err := syncv1.NewSyncServiceClient(c).SyncManifests(ctx, &syncv1.SyncManifestsRequest{AllEnvironments: true})
			return func() error { _, err := st.Recv(); return err }, err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			port := stalledStream(t, tt.addr, tt.token, tt.open)
			stopped := time.Now()
			serverPort := portOf(t, tt.addr)
			for serverHolds(t, serverPort, port) {
				if time.Since(stopped) > 30*time.Second {
					t.Fatal("the server still holds the connection of a peer that stopped reading after 30 s")
				}
				time.Sleep(50 * time.Millisecond)
			}
			took := time.Since(stopped)
			t.Logf("%s: connection closed %.1f s after the peer stopped reading (write timeout %s)", tt.name, took.Seconds(), writeTimeout)
			if took > writeTimeout+5*time.Second {
				t.Errorf("closed after %s, want within the write timeout (%s) and a few heartbeats", took, writeTimeout)
			}
		})
	}
	t.Cleanup(func() {
		waitFor(t, 5*time.Second, "the evaluator counts no open stream", func() bool { return streamsOpen(t, em.eval.httpAddr) == 0 })
	})
}

// waitFor polls cond until it holds or timeout passes (then fails the test).
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: not yet %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// trickleGRPCMessage opens an HTTP/2 connection to addr, sends the headers of a
// call of method and then its request message a byte every interval, and
// returns how long until the server closed the connection.
func trickleGRPCMessage(addr, method string, interval, giveUp time.Duration) (time.Duration, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer func() { _ = c.Close() }()
	start := time.Now()
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		return 0, err
	}
	fr := http2.NewFramer(c, c)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", method},
		{":authority", addr}, {"content-type", "application/grpc"}, {"te", "trailers"}} {
		_ = enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := fr.WriteSettings(); err != nil {
		return 0, err
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
		return 0, err
	}
	cut := make(chan struct{})
	go func() {
		defer close(cut)
		_ = c.SetReadDeadline(start.Add(giveUp))
		_, _ = io.Copy(io.Discard, c)
	}()
	msg := append([]byte{0, 0, 0, 0, 100}, make([]byte, 100)...) // a 100-byte message, never completed
	t := time.NewTicker(interval)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-cut:
			if d := time.Since(start); d < giveUp {
				return d, nil
			}
			return 0, fmt.Errorf("still open after %s", giveUp)
		case <-t.C:
			_ = fr.WriteData(1, false, msg[i%len(msg):i%len(msg)+1])
		}
	}
}

// TestATrickledGRPCRequestMessageIsCut sends the request message of each
// service's stream call a byte every 2 s on an open connection (headers and
// preface sent at once): each server closes the connection within 15 s.
func TestATrickledGRPCRequestMessageIsCut(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for read timeouts")
	}
	dir := t.TempDir()
	cp := startEmbeddedControlPlane(t, dir+"/cp")
	ev := startBareEvaluator(t, dir)
	for _, tc := range []struct{ name, addr, method string }{
		{"control plane", cp.grpcAddr, "/" + syncv1.SyncService_ServiceDesc.ServiceName + "/SyncManifests"},
		{"evaluator", ev.grpcAddr, "/" + evaluationv1.EvaluationService_ServiceDesc.ServiceName + "/StreamManifest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, err := trickleGRPCMessage(tc.addr, tc.method, 2*time.Second, 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s %s trickled: connection closed after %.1f s", tc.name, strings.TrimPrefix(tc.method, "/"), d.Seconds())
			if d > 15*time.Second {
				t.Errorf("cut after %s, want within 15 s", d)
			}
		})
	}
}
