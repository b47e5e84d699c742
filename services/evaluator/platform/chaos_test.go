package platform

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	syncv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/sync/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/pkg/sdk"
)

// The fault tests below are slow (they wait for dead peers to be found, restart
// servers under load): they run with `make chaos` (FLAGFORGE_CHAOS=1), not with
// `make test`.

// chaos skips the test unless FLAGFORGE_CHAOS=1.
func chaos(t *testing.T) {
	t.Helper()
	if os.Getenv("FLAGFORGE_CHAOS") != "1" {
		t.Skip("a fault test: run with make chaos (FLAGFORGE_CHAOS=1)")
	}
}

// Stream client modes of this test binary run as a child process
// (FLAGFORGE_CHAOS_CLIENT=<mode>), so a test can freeze it with SIGSTOP.
const (
	clientGRPC    = "grpc"         // StreamManifest over gRPC (the Go SDK)
	clientNDJSON  = "ndjson"       // GET /v1/stream over HTTP/2 (h2c: curl --http2-prior-knowledge)
	clientNDJSON1 = "ndjson-http1" // GET /v1/stream over HTTP/1.1 (curl)
	clientSSE     = "sse"          // GET /v1/sse over HTTP/2 (h2c; browsers under TLS get h2)
	clientSSE1    = "sse-http1"    // GET /v1/sse over HTTP/1.1 (browsers on plain http)
	clientSync    = "sync"         // the control plane's SyncManifests over gRPC (evaluators)
	clientEvents  = "events"       // the control plane's GET /v1/orgs/{org}/events over HTTP/2 (h2c)
	clientEvents1 = "events-http1" // the same over HTTP/1.1 (the console on plain http)
)

// runStreamClient is the child process: it opens one stream of its mode to
// FLAGFORGE_CHAOS_ADDR with FLAGFORGE_CHAOS_KEY, prints "connected" after the
// first message and reads until the stream ends.
func runStreamClient(mode string) int {
	addr, key := os.Getenv("FLAGFORGE_CHAOS_ADDR"), os.Getenv("FLAGFORGE_CHAOS_KEY")
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+key)
	connected := sync.OnceFunc(func() { fmt.Println("connected") })
	var err error
	switch mode {
	case clientGRPC, clientSync:
		var conn *grpc.ClientConn
		if conn, err = grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
			break
		}
		var recv func() error
		if mode == clientGRPC {
			st, serr := evaluationv1.NewEvaluationServiceClient(conn).StreamManifest(ctx, &evaluationv1.StreamManifestRequest{})
			err, recv = serr, func() error { _, err := st.Recv(); return err }
		} else {
			st, serr := syncv1.NewSyncServiceClient(conn).SyncManifests(ctx, &syncv1.SyncManifestsRequest{AllEnvironments: true})
			err, recv = serr, func() error { _, err := st.Recv(); return err }
		}
		for err == nil {
			if err = recv(); err == nil {
				connected()
			}
		}
	case clientNDJSON, clientSSE, clientEvents, clientNDJSON1, clientSSE1, clientEvents1:
		h2 := mode == clientNDJSON || mode == clientSSE || mode == clientEvents
		var p http.Protocols
		p.SetUnencryptedHTTP2(h2)
		p.SetHTTP1(!h2)
		client := &http.Client{Transport: &http.Transport{Protocols: &p}}
		u := "http://" + addr + "/v1/stream"
		switch mode {
		case clientSSE, clientSSE1:
			u = "http://" + addr + "/v1/sse?key=" + url.QueryEscape(key)
		case clientEvents, clientEvents1:
			u = "http://" + addr + "/v1/orgs/" + org + "/events"
		}
		var req *http.Request
		if req, err = http.NewRequestWithContext(ctx, http.MethodGet, u, nil); err != nil {
			break
		}
		req.Header.Set("Authorization", "Bearer "+key)
		var resp *http.Response
		if resp, err = client.Do(req); err != nil {
			break
		}
		defer func() { _ = resp.Body.Close() }()
		if want := map[bool]int{true: 2, false: 1}[h2]; resp.StatusCode != http.StatusOK || resp.ProtoMajor != want {
			err = fmt.Errorf("%s: %s over %s", u, resp.Status, resp.Proto)
			break
		}
		rd := bufio.NewReader(resp.Body)
		for err == nil {
			if _, err = rd.ReadString('\n'); err == nil {
				connected()
			}
		}
	default:
		err = fmt.Errorf("unknown client mode %q", mode)
	}
	fmt.Println("stream ended:", err)
	return 0
}

// tcpConn is one row of /proc/net/tcp.
type tcpConn struct {
	localPort, remotePort int
	state                 string // hex: 01 ESTABLISHED
	inode                 string
}

func readTCP(t *testing.T) []tcpConn {
	t.Helper()
	raw, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	var out []tcpConn
	for _, line := range strings.Split(string(raw), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 10 {
			continue
		}
		port := func(s string) int {
			_, p, _ := strings.Cut(s, ":")
			n, _ := strconv.ParseInt(p, 16, 32)
			return int(n)
		}
		out = append(out, tcpConn{localPort: port(f[1]), remotePort: port(f[2]), state: f[3], inode: f[9]})
	}
	return out
}

// clientPorts returns the local ports of pid's TCP connections to serverPort.
func clientPorts(t *testing.T, pid, serverPort int) []int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name()))
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var ports []int
	for _, c := range readTCP(t) {
		if inodes[c.inode] && c.remotePort == serverPort && c.state == "01" {
			ports = append(ports, c.localPort)
		}
	}
	return ports
}

// serverHolds reports whether the server side of a connection from clientPort
// to serverPort is still established.
func serverHolds(t *testing.T, serverPort, clientPort int) bool {
	t.Helper()
	for _, c := range readTCP(t) {
		if c.localPort == serverPort && c.remotePort == clientPort && c.state == "01" {
			return true
		}
	}
	return false
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, _ := strings.Cut(addr, ":")
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// streamsOpen is the evaluator's flagforge_evaluator_streams_open, all kinds.
func streamsOpen(t *testing.T, httpAddr string) float64 {
	t.Helper()
	r, err := http.Get("http://" + httpAddr + "/metrics") //nolint:noctx // a test probe
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Body.Close() }()
	raw, _ := io.ReadAll(r.Body)
	var sum float64
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "flagforge_evaluator_streams_open{") {
			f := strings.Fields(l)
			v, _ := strconv.ParseFloat(f[len(f)-1], 64)
			sum += v
		}
	}
	return sum
}

// TestChaosFrozenStreamClientsAreDropped freezes (SIGSTOP) a client process of
// each stream transport, the way real clients use it: gRPC StreamManifest (the
// Go SDK), GET /v1/stream over HTTP/1.1 (curl) and h2c, GET /v1/sse over
// HTTP/1.1 (browsers on plain http) and h2c (browsers get h2 under TLS), the
// control plane's sync stream (evaluators) and its events stream over HTTP/1.1
// and h2c (the console). Each server closes its connection within 45 s
// (HTTP/2 and gRPC: pings; HTTP/1.1: FLAGFORGE_HTTP1_STREAM_MAX_AGE, default
// 30 s), and the evaluator's open stream count returns to zero.
func TestChaosFrozenStreamClientsAreDropped(t *testing.T) {
	chaos(t)
	em := newEmbedded(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		mode, addr, key string
	}{
		{clientGRPC, em.eval.grpcAddr, em.sdkKey},
		{clientNDJSON, em.eval.httpAddr, em.sdkKey},
		{clientSSE, em.eval.httpAddr, em.clientKey},
		{clientSync, em.cpGRPC, em.syncToken},
		{clientNDJSON1, em.eval.httpAddr, em.sdkKey},
		{clientSSE1, em.eval.httpAddr, em.clientKey},
		{clientEvents, em.cpHTTP, em.adminToken},
		{clientEvents1, em.cpHTTP, em.adminToken},
	}
	var mu sync.Mutex
	var report []string
	t.Run("transports", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.mode, func(t *testing.T) {
				t.Parallel()
				c := start(t, tt.mode+" client", self, []string{"FLAGFORGE_CHAOS_CLIENT=" + tt.mode,
					"FLAGFORGE_CHAOS_ADDR=" + tt.addr, "FLAGFORGE_CHAOS_KEY=" + tt.key})
				t.Cleanup(func() { _ = c.cmd.Process.Signal(syscall.SIGCONT) })
				deadline := time.Now().Add(15 * time.Second)
				for !strings.Contains(c.logs.String(), "connected") {
					if c.Exited() || time.Now().After(deadline) {
						t.Fatalf("the client did not connect: %s", c.logs.String())
					}
					time.Sleep(20 * time.Millisecond)
				}
				serverPort := portOf(t, tt.addr)
				ports := clientPorts(t, c.cmd.Process.Pid, serverPort)
				if len(ports) != 1 {
					t.Fatalf("client connections to :%d: %v", serverPort, ports)
				}
				if err := c.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
					t.Fatal(err)
				}
				stopped := time.Now()
				for serverHolds(t, serverPort, ports[0]) {
					if time.Since(stopped) > 60*time.Second {
						t.Fatalf("the server still holds the frozen client's connection after 60 s")
					}
					time.Sleep(250 * time.Millisecond)
				}
				took := time.Since(stopped)
				mu.Lock()
				report = append(report, fmt.Sprintf("%s: dropped %.1f s after SIGSTOP", tt.mode, took.Seconds()))
				mu.Unlock()
				if took > 45*time.Second {
					t.Errorf("dropped after %s, want within 45 s", took)
				}
			})
		}
	})
	for _, r := range report {
		t.Log(r)
	}
	deadline := time.Now().Add(5 * time.Second)
	for streamsOpen(t, em.eval.httpAddr) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the evaluator still counts %v open streams", streamsOpen(t, em.eval.httpAddr))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runCountingProxy is a child process: it forwards TCP connections from its
// own loopback address to upstream, prints "listening <addr>", and for each
// connection that reached upstream "arrived <unix nanoseconds>", taken when the
// connection was accepted. It runs apart from the test process so that its
// timestamps stay accurate while the test's 2,000 clients starve that process
// on a loaded machine.
func runCountingProxy(upstream string) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("listen:", err)
		return 1
	}
	var out sync.Mutex
	say := func(format string, args ...any) {
		out.Lock()
		defer out.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	say("listening %s", l.Addr())
	for {
		c, err := l.Accept()
		if err != nil {
			return 1
		}
		at := time.Now()
		go func() {
			defer func() { _ = c.Close() }()
			u, err := net.DialTimeout("tcp", upstream, 5*time.Second)
			if err != nil {
				return // the server is down: a failed attempt
			}
			defer func() { _ = u.Close() }()
			say("arrived %d", at.UnixNano())
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
			<-done
		}()
	}
}

// countingProxy is the test's handle on a runCountingProxy child process.
type countingProxy struct {
	t    *testing.T
	p    *proc
	addr string
}

func startProxy(t *testing.T, upstream string) *countingProxy {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{t: t, p: start(t, "counting proxy", self, []string{"FLAGFORGE_CHAOS_PROXY=" + upstream})}
	deadline := time.Now().Add(10 * time.Second)
	for p.addr == "" {
		for _, l := range strings.Split(p.p.logs.String(), "\n") {
			if a, ok := strings.CutPrefix(l, "listening "); ok {
				p.addr = strings.TrimSpace(a)
			}
		}
		if p.addr == "" {
			if p.p.Exited() || time.Now().After(deadline) {
				t.Fatalf("the proxy did not start: %s", p.p.logs.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return p
}

// since returns the arrival times after t0.
func (p *countingProxy) since(t0 time.Time) []time.Time {
	var out []time.Time
	for _, l := range strings.Split(p.p.logs.String(), "\n") {
		if v, ok := strings.CutPrefix(l, "arrived "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if a := time.Unix(0, n); err == nil && a.After(t0) {
				out = append(out, a)
			}
		}
	}
	return out
}

// TestChaosAFleetReconnectsToARestartedEvaluatorOverSeveralSeconds connects
// 2,000 Go SDK clients (pkg/sdk, streaming) to an evaluator through a counting
// proxy (its own process, so its timestamps hold when the test process is
// starved), kills the evaluator (SIGKILL) and starts it again at once on the same
// ports: every client reconnects, and no single second holds more than 25 % of
// the reconnections.
func TestChaosAFleetReconnectsToARestartedEvaluatorOverSeveralSeconds(t *testing.T) {
	chaos(t)
	const clients = 2000
	em := newEmbedded(t)
	pub, err := os.ReadFile(filepath.Join(em.dir, "controlplane", "signing-key.pub.pem"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := manifest.ParsePublicKeys(pub)
	if err != nil {
		t.Fatal(err)
	}
	e := &evaluator{dataDir: filepath.Join(em.dir, "fleet-evaluator"), httpAddr: freeAddr(t), grpcAddr: freeAddr(t)}
	startFleetEvaluator := func() {
		e.p = start(t, "fleet evaluator", evaluatorBin, []string{
			"FLAGFORGE_SYNC_ADDR=" + em.cpGRPC,
			"FLAGFORGE_SYNC_TOKEN=" + em.syncToken,
			"FLAGFORGE_TRUSTED_KEYS=" + filepath.Join(em.dir, "controlplane", "signing-key.pub.pem"),
			"FLAGFORGE_ENVIRONMENTS=" + org + "/" + project + "/" + environment,
			"FLAGFORGE_DATA_DIR=" + e.dataDir,
			"FLAGFORGE_GRPC_ADDR=" + e.grpcAddr,
			"FLAGFORGE_HTTP_ADDR=" + e.httpAddr,
			"FLAGFORGE_ADMIN_ADDR=",
			"FLAGFORGE_RATE_LIMIT=0",
			"FLAGFORGE_MAX_STREAMS_PER_KEY=0",
			"FLAGFORGE_LOG_LEVEL=warn",
		})
		e.p.waitReady("http://"+e.httpAddr+"/readyz", 30*time.Second)
	}
	startFleetEvaluator()
	proxy := startProxy(t, e.grpcAddr)

	fleet := make([]*sdk.Client, clients)
	log := slog.New(slog.DiscardHandler)
	for i := range fleet {
		c, err := sdk.New(sdk.Config{Address: proxy.addr, SDKKey: em.sdkKey, TrustedKeys: keys, DisableUsage: true, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		fleet[i] = c
	}
	t.Cleanup(func() {
		for _, c := range fleet {
			_ = c.Close()
		}
	})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	for i, c := range fleet {
		if err := c.WaitReady(ctx); err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for streamsOpen(t, e.httpAddr) < clients {
		if time.Now().After(deadline) {
			t.Fatalf("%v of %d streams open", streamsOpen(t, e.httpAddr), clients)
		}
		time.Sleep(100 * time.Millisecond)
	}

	_ = e.p.cmd.Process.Kill()
	<-e.p.done
	killed := time.Now()
	startFleetEvaluator()
	t.Logf("evaluator killed and ready again after %s", time.Since(killed).Round(time.Millisecond))
	deadline = time.Now().Add(90 * time.Second)
	for len(proxy.since(killed)) < clients || streamsOpen(t, e.httpAddr) < clients {
		if time.Now().After(deadline) {
			t.Fatalf("after 90 s: %d reconnections, %v streams open, want %d", len(proxy.since(killed)), streamsOpen(t, e.httpAddr), clients)
		}
		time.Sleep(200 * time.Millisecond)
	}
	arrivals := proxy.since(killed)
	perSecond := map[int]int{}
	last := 0
	for _, a := range arrivals {
		s := int(a.Sub(killed) / time.Second)
		perSecond[s]++
		last = max(last, s)
	}
	var hist []string
	peak := 0
	for s := 0; s <= last; s++ {
		hist = append(hist, fmt.Sprintf("%ds:%d", s, perSecond[s]))
		peak = max(peak, perSecond[s])
	}
	share := float64(peak) / float64(len(arrivals))
	t.Logf("%d reconnections of %d clients after the kill, per second: %s; busiest second %d (%.1f %%)",
		len(arrivals), clients, strings.Join(hist, " "), peak, 100*share)
	if share > 0.25 {
		t.Errorf("the busiest second held %.1f %% of the reconnections, want at most 25 %%", 100*share)
	}
}
