package limits

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/stats"
)

// GRPCGuard applies the limits to one gRPC server. Besides the options of
// GRPCServerOptions, it cuts a peer that holds the server's resources without
// making progress on a connection that is otherwise alive (it answers pings):
//   - a call's request message that has not wholly arrived within ReadTimeout
//     of the call's headers (bytes trickled on an open connection; client
//     streams are exempt, their messages may be far apart);
//   - a server-stream message the peer does not take within StreamWriteTimeout
//     (it stopped reading while data flows; SendMsg blocks on flow control).
//
// Either closes the peer's connection: gRPC gives a server no way to reset one
// stream whose queued data waits for the peer's flow-control window, and
// closing frees everything the connection held (its streams end, their
// handlers return). A healthy client sharing that connection reconnects.
//
// The guard finds connections through Listener: serve the gRPC server on
// guard.Listener(l) with guard.ServerOptions(). A connection the process makes
// to its own listener (a REST gateway's loopback) must never be cut for one
// slow stream of the many it carries: dial it with LoopbackDialer.
type GRPCGuard struct {
	c      Config
	log    *slog.Logger
	mu     sync.Mutex
	conns  map[string]net.Conn // by connKey
	exempt map[string]bool     // connKeys of loopback connections
}

// GRPCGuard returns the guard of one gRPC server; log (nil: none) receives one
// warning per connection cut.
func (c Config) GRPCGuard(log *slog.Logger) *GRPCGuard {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &GRPCGuard{c: c.WithDefaults(), log: log, conns: map[string]net.Conn{}, exempt: map[string]bool{}}
}

// ServerOptions are GRPCServerOptions plus the guard's stats handler and
// stream interceptor.
func (g *GRPCGuard) ServerOptions() []grpc.ServerOption {
	return append(g.c.GRPCServerOptions(),
		grpc.StatsHandler(guardStats{g}),
		grpc.ChainStreamInterceptor(g.streamInterceptor))
}

// Listener wraps l so that the guard can close the connections it accepts.
func (g *GRPCGuard) Listener(l net.Listener) net.Listener { return &guardListener{Listener: l, g: g} }

// LoopbackDialer dials TCP (for grpc.WithContextDialer) and exempts the
// connection from the guard: the process's own client of its own listener.
func (g *GRPCGuard) LoopbackDialer() func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		// The server sees this connection's addresses the other way round.
		g.mu.Lock()
		g.exempt[connKey(c.LocalAddr(), c.RemoteAddr())] = true
		g.mu.Unlock()
		return &exemptConn{Conn: c, g: g}, nil
	}
}

type exemptConn struct {
	net.Conn
	g    *GRPCGuard
	once sync.Once
}

func (c *exemptConn) Close() error {
	c.once.Do(func() {
		c.g.mu.Lock()
		delete(c.g.exempt, connKey(c.LocalAddr(), c.RemoteAddr()))
		c.g.mu.Unlock()
	})
	return c.Conn.Close()
}

func connKey(remote, local net.Addr) string {
	if remote == nil || local == nil {
		return ""
	}
	return remote.String() + " " + local.String()
}

// cut closes the connection named key (once; later calls find nothing).
func (g *GRPCGuard) cut(key, why string) {
	g.mu.Lock()
	c := g.conns[key]
	if g.exempt[key] {
		c = nil
	} else {
		delete(g.conns, key)
	}
	g.mu.Unlock()
	if c == nil {
		return
	}
	g.log.Warn("closing a gRPC connection that holds a call without progress", "peer", c.RemoteAddr().String(), "reason", why)
	_ = c.Close()
}

type guardListener struct {
	net.Listener
	g *GRPCGuard
}

func (l *guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	k := connKey(c.RemoteAddr(), c.LocalAddr())
	l.g.mu.Lock()
	l.g.conns[k] = c
	l.g.mu.Unlock()
	return &guardConn{Conn: c, g: l.g, key: k}, nil
}

type guardConn struct {
	net.Conn
	g    *GRPCGuard
	key  string
	once sync.Once
}

func (c *guardConn) Close() error {
	c.once.Do(func() {
		c.g.mu.Lock()
		if c.g.conns[c.key] == c.Conn {
			delete(c.g.conns, c.key)
		}
		c.g.mu.Unlock()
	})
	return c.Conn.Close()
}

// call is one RPC's state, in its context.
type call struct {
	mu   sync.Mutex
	key  string
	read *time.Timer // running until the request message has arrived
	done bool
}

type callKey struct{}

func (c *call) stopRead() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.done = true
	if c.read != nil {
		c.read.Stop()
	}
}

// guardStats times the arrival of each call's request message.
type guardStats struct{ g *GRPCGuard }

func (guardStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, callKey{}, &call{})
}

func (h guardStats) HandleRPC(ctx context.Context, s stats.RPCStats) {
	c, _ := ctx.Value(callKey{}).(*call)
	if c == nil {
		return
	}
	switch s := s.(type) {
	case *stats.InHeader:
		c.mu.Lock()
		c.key = connKey(s.RemoteAddr, s.LocalAddr)
		if !c.done && c.read == nil {
			key, d := c.key, h.g.c.ReadTimeout
			c.read = time.AfterFunc(d, func() { h.g.cut(key, "the request message did not arrive within "+d.String()) })
		}
		c.mu.Unlock()
	case *stats.Begin:
		if s.IsClientStream {
			c.stopRead()
		}
	case *stats.InPayload, *stats.End:
		c.stopRead()
	}
}

func (guardStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }

func (guardStats) HandleConn(context.Context, stats.ConnStats) {}

// streamInterceptor bounds every message a server stream sends.
func (g *GRPCGuard) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	c, _ := ss.Context().Value(callKey{}).(*call)
	if c == nil || !info.IsServerStream {
		return handler(srv, ss)
	}
	c.mu.Lock()
	key := c.key
	c.mu.Unlock()
	return handler(srv, &deadlineStream{ServerStream: ss, g: g, key: key})
}

// deadlineStream closes the connection when one SendMsg outlasts
// StreamWriteTimeout.
type deadlineStream struct {
	grpc.ServerStream
	g   *GRPCGuard
	key string
}

func (s *deadlineStream) SendMsg(m any) error {
	d := s.g.c.StreamWriteTimeout
	t := time.AfterFunc(d, func() { s.g.cut(s.key, "a stream message was not taken within "+d.String()) })
	defer t.Stop()
	return s.ServerStream.SendMsg(m)
}

// GRPCServerOptions are the gRPC server options of the limits: the largest
// message received (larger ones fail with RESOURCE_EXHAUSTED before they are
// read), the connection handshake timeout, and keepalive pings with their
// enforcement (clients may ping every 10 s). GRPCGuard adds the per-call
// deadlines.
//
// The largest message received is MaxMessageBytes or MaxBodyBytes, whichever is
// larger: a REST gateway hands every accepted body to its gRPC server as one
// message (no larger than the JSON it came from), so a raised
// FLAGFORGE_MAX_REQUEST_BYTES must not turn into a refusal one hop later.
func (c Config) GRPCServerOptions() []grpc.ServerOption {
	c = c.WithDefaults()
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(int(min(max(c.MaxMessageBytes, c.MaxBodyBytes), 1<<30))),
		grpc.ConnectionTimeout(c.ReadTimeout),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: c.PingInterval, Timeout: c.PingTimeout}),
	}
}
