package streamload

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
)

// Stream kinds, as users open them.
const (
	KindSSE    = "sse"    // a browser: GET /v1/sse with a client key and a context
	KindNDJSON = "ndjson" // a server SDK over REST: GET /v1/stream
	KindGRPC   = "grpc"   // a server SDK over gRPC: StreamManifest
)

// tracker is what every stream reports to: its initial state, heartbeats,
// each change's arrival, and the first problem.
type tracker struct {
	changes  int
	opened   atomic.Int64
	received []atomic.Int64
	closed   atomic.Int64 // streams that ended before the run ended them
	retries  atomic.Int64 // opening attempts repeated
	problem  atomic.Pointer[error]
	n        int64
	allOpen  chan struct{}
	all      []chan struct{}
	streams  []*streamState
}

// streamState is one stream's record; only its own reader writes it until the
// run reads it after every change arrived (or timed out).
type streamState struct {
	kind       string
	openedAt   time.Time
	heartbeats atomic.Int32
	changes    int
	arrivals   []time.Time
}

func newTracker(n, changes int) *tracker {
	t := &tracker{changes: changes, n: int64(n), received: make([]atomic.Int64, changes), allOpen: make(chan struct{}),
		all: make([]chan struct{}, changes), streams: make([]*streamState, n)}
	for k := range t.all {
		t.all[k] = make(chan struct{})
	}
	return t
}

func (t *tracker) fail(err error) { t.problem.CompareAndSwap(nil, &err) }

func (t *tracker) firstProblem() error {
	if p := t.problem.Load(); p != nil {
		return *p
	}
	return nil
}

func (t *tracker) markOpen(s *streamState) {
	s.openedAt = time.Now()
	if t.opened.Add(1) == t.n {
		close(t.allOpen)
	}
}

// markChange records the stream's next change.
func (t *tracker) markChange(s *streamState, at time.Time) {
	k := s.changes
	if k >= t.changes {
		t.fail(fmt.Errorf("a %s stream received %d changes, more than the %d published", s.kind, k+1, t.changes))
		return
	}
	s.arrivals[k] = at
	s.changes++
	if t.received[k].Add(1) == t.n {
		close(t.all[k])
	}
}

// dialerFor binds connection conn to a source address 127.0.0.2, 127.0.0.3,
// ... (perIP connections each), so no source address runs out of ephemeral ports.
func dialerFor(conn, perIP int) *net.Dialer {
	ip := net.IPv4(127, 0, 0, byte(2+(conn/perIP)%250))
	return &net.Dialer{LocalAddr: &net.TCPAddr{IP: ip}, Timeout: 30 * time.Second, KeepAlive: -1}
}

// h2cTransport is one HTTP/2 cleartext connection's transport (the streams
// given to it share one TCP connection, as behind an HTTP/2 proxy).
func h2cTransport(d *net.Dialer) *http.Transport {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Transport{
		Protocols:   &p,
		DialContext: d.DialContext,
		HTTP2:       &http.HTTP2Config{PingTimeout: 30 * time.Second, SendPingTimeout: 0},
	}
}

// maxOpenAttempts bounds the attempts to open one stream: a stream refused or
// cut before its first state is opened again, as clients do (a loaded machine
// can miss HTTP/2's 2 s SETTINGS deadline); one cut after it is a failure.
const maxOpenAttempts = 5

// retry runs attempt until it opened the stream or failed for good.
func (t *tracker) retry(ctx context.Context, wg *sync.WaitGroup, attempt func() (opened bool, err error)) {
	defer wg.Done()
	for i := 1; ; i++ {
		opened, err := attempt()
		if err == nil || ctx.Err() != nil {
			return
		}
		if opened || i == maxOpenAttempts {
			if opened {
				t.closed.Add(1)
			}
			t.fail(err)
			return
		}
		t.retries.Add(1)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(i) * 500 * time.Millisecond):
		}
	}
}

// runHTTP runs one /v1/sse or /v1/stream stream on tr until ctx ends.
func (t *tracker) runHTTP(ctx context.Context, wg *sync.WaitGroup, tr *http.Transport, s *streamState, u, key string) {
	t.retry(ctx, wg, func() (bool, error) { return t.attemptHTTP(ctx, tr, s, u, key) })
}

func (t *tracker) attemptHTTP(ctx context.Context, tr *http.Transport, s *streamState, u, key string) (initial bool, _ error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, err
	}
	if s.kind == KindNDJSON {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		return false, fmt.Errorf("%s: %w", s.kind, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return false, fmt.Errorf("%s: %d %s", s.kind, resp.StatusCode, b)
	}
	br := bufio.NewReaderSize(resp.Body, 4096)
	var event string
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) { // a long line (a snapshot): read the rest
			rest, err2 := br.ReadBytes('\n')
			line, err = append(append([]byte(nil), line...), rest...), err2
		}
		if err != nil {
			if ctx.Err() != nil {
				return initial, nil //nolint:nilerr // the run ended the stream
			}
			return initial, fmt.Errorf("%s stream ended early: %w", s.kind, err)
		}
		at := time.Now()
		switch s.kind {
		case KindSSE:
			switch {
			case bytes.HasPrefix(line, []byte(": heartbeat")):
				s.heartbeats.Add(1)
			case bytes.HasPrefix(line, []byte("event: ")):
				event = string(bytes.TrimSpace(line[len("event: "):]))
			case bytes.HasPrefix(line, []byte("data: ")):
				switch {
				case event == "flags" && !initial:
					initial = true
					t.markOpen(s)
				case event == "changes" && bytes.Contains(line, []byte(ChangedFlag)):
					t.markChange(s, at)
				case event == "closing":
					t.fail(fmt.Errorf("sse: closed by the server: %s", line))
				}
			}
		case KindNDJSON:
			switch {
			case bytes.HasPrefix(line, []byte(`{"result":{"heartbeat"`)):
				s.heartbeats.Add(1)
			case bytes.HasPrefix(line, []byte(`{"result":{"snapshot"`)) && !initial:
				initial = true
				t.markOpen(s)
			case bytes.HasPrefix(line, []byte(`{"result":{"delta"`)), bytes.HasPrefix(line, []byte(`{"result":{"snapshot"`)):
				t.markChange(s, at)
			case bytes.HasPrefix(line, []byte(`{"result":{"closing"`)), bytes.HasPrefix(line, []byte(`{"error"`)):
				t.fail(fmt.Errorf("ndjson: %s", line))
			}
		}
	}
}

// runGRPC runs one StreamManifest stream on c until ctx ends.
func (t *tracker) runGRPC(ctx context.Context, wg *sync.WaitGroup, c evaluationv1.EvaluationServiceClient, s *streamState, key string) {
	t.retry(ctx, wg, func() (bool, error) { return t.attemptGRPC(ctx, c, s, key) })
}

func (t *tracker) attemptGRPC(ctx context.Context, c evaluationv1.EvaluationServiceClient, s *streamState, key string) (initial bool, _ error) {
	st, err := c.StreamManifest(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key), &evaluationv1.StreamManifestRequest{})
	if err != nil {
		return false, fmt.Errorf("grpc: %w", err)
	}
	for {
		msg, err := st.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return initial, nil //nolint:nilerr // the run ended the stream
			}
			return initial, fmt.Errorf("grpc stream ended early: %w", err)
		}
		at := time.Now()
		switch {
		case msg.GetHeartbeat() != nil:
			s.heartbeats.Add(1)
		case msg.GetSnapshot() != nil && !initial:
			initial = true
			t.markOpen(s)
		case msg.GetDelta() != nil, msg.GetSnapshot() != nil:
			t.markChange(s, at)
		case msg.GetClosing() != nil:
			t.fail(fmt.Errorf("grpc: closed by the server: %v", msg.GetClosing()))
		}
	}
}

func newGRPCConn(addr string, d *net.Dialer) (*grpc.ClientConn, error) {
	return grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return d.DialContext(ctx, "tcp", a) }),
	)
}

// sseURL is /v1/sse for the i-th distinct context (a browser user: a plan and
// a country, with the targeting key of one of `distinct` users).
func sseURL(base, key string, i int) string {
	plans := []string{"free", "pro", "enterprise"}
	countries := []string{"DE", "FR", "US", "JP", "BR"}
	ctx := `{"targetingKey":"user-` + strconv.Itoa(i) + `","plan":"` + plans[i%len(plans)] + `","country":"` + countries[i%len(countries)] + `"}`
	return base + "/v1/sse?key=" + url.QueryEscape(key) + "&context=" + url.QueryEscape(ctx)
}
