// Package limits bounds what one client can make a FlagForge server hold: the
// size of a request body, how long a request may take to arrive, how long a
// stream write may block, and how quickly a dead HTTP/2 or gRPC peer is found.
// Both services (the control plane and the evaluator) apply the same Config to
// every HTTP and gRPC listener, so hostile or frozen clients cost bounded memory
// and are cut within known times.
//
// The contract:
//   - A request body larger than MaxBodyBytes is answered 413 Request Entity Too
//     Large before anything decodes it: at once when Content-Length says so,
//     otherwise as soon as the (chunked) body passes the limit while being read.
//     A request holds at most MaxBodyBytes+1 bytes of body in memory.
//   - A request whose headers and body have not fully arrived within ReadTimeout
//     (headers within ReadHeaderTimeout) is cut: its connection is closed. Once
//     the request has arrived, the handler's own work is not bounded by it.
//   - A stream write that cannot complete within StreamWriteTimeout ends the
//     stream (StreamWriter / SetWriteDeadline).
//   - HTTP/2 and gRPC connections that send nothing are pinged every PingInterval;
//     a peer that does not answer within PingTimeout is disconnected, so a frozen
//     streaming client is found within PingInterval+PingTimeout.
//   - A stream or long poll served over HTTP/1.x (no pings) ends after at most
//     HTTP1StreamMaxAge (MaxAge), so a frozen HTTP/1.1 client is dropped then.
//   - On gRPC (GRPCGuard), a call's request message must arrive within
//     ReadTimeout of its headers, and every server-stream message must be taken
//     by the peer within StreamWriteTimeout; else the connection is closed.
package limits

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Config holds the limits of one service. Fields map to FLAGFORGE_* variables
// through the embedding service's configuration.
type Config struct {
	// MaxBodyBytes bounds a request body (HTTP).
	MaxBodyBytes int64 `env:"MAX_REQUEST_BYTES, default=1048576"`
	// MaxMessageBytes bounds a received gRPC message (evaluators' usage batches
	// and SDKs' evaluation reports are larger than API bodies).
	MaxMessageBytes int64 `env:"MAX_MESSAGE_BYTES, default=4194304"`
	// ReadHeaderTimeout bounds the arrival of a request's headers.
	ReadHeaderTimeout time.Duration `env:"READ_HEADER_TIMEOUT, default=5s"`
	// ReadTimeout bounds the arrival of a whole request (headers and body).
	ReadTimeout time.Duration `env:"READ_TIMEOUT, default=10s"`
	// IdleTimeout closes keep-alive connections idle for that long.
	IdleTimeout time.Duration `env:"IDLE_TIMEOUT, default=2m"`
	// StreamWriteTimeout bounds one write (a frame, an event, a heartbeat) of a
	// long-lived stream.
	StreamWriteTimeout time.Duration `env:"STREAM_WRITE_TIMEOUT, default=10s"`
	// HTTP1StreamMaxAge bounds how long a stream or long poll served over
	// HTTP/1.x lasts (HTTP/1.x has no ping: a frozen client is found only by
	// ending its stream). Each stream lasts a random 3/4 to all of it, then ends
	// cleanly and its connection closes; clients resume from their version.
	HTTP1StreamMaxAge time.Duration `env:"HTTP1_STREAM_MAX_AGE, default=30s"`
	// PingInterval is how long an HTTP/2 or gRPC connection may be silent before
	// the server pings it.
	PingInterval time.Duration `env:"PING_INTERVAL, default=20s"`
	// PingTimeout is how long a ping may stay unanswered before the connection is
	// closed.
	PingTimeout time.Duration `env:"PING_TIMEOUT, default=10s"`
}

// Defaults returns the default limits.
func Defaults() Config {
	return Config{
		MaxBodyBytes: 1 << 20, MaxMessageBytes: 4 << 20, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		IdleTimeout: 2 * time.Minute, StreamWriteTimeout: 10 * time.Second, HTTP1StreamMaxAge: 30 * time.Second,
		PingInterval: 20 * time.Second, PingTimeout: 10 * time.Second,
	}
}

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	d := Defaults()
	def := func(v *time.Duration, dv time.Duration) {
		if *v == 0 {
			*v = dv
		}
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = d.MaxBodyBytes
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = d.MaxMessageBytes
	}
	def(&c.ReadHeaderTimeout, d.ReadHeaderTimeout)
	def(&c.ReadTimeout, d.ReadTimeout)
	def(&c.IdleTimeout, d.IdleTimeout)
	def(&c.StreamWriteTimeout, d.StreamWriteTimeout)
	def(&c.HTTP1StreamMaxAge, d.HTTP1StreamMaxAge)
	def(&c.PingInterval, d.PingInterval)
	def(&c.PingTimeout, d.PingTimeout)
	return c
}

// Validate reports every limit out of range, by its environment variable.
func (c Config) Validate() error {
	var problems []error
	if c.MaxBodyBytes < 1024 {
		problems = append(problems, fmt.Errorf("FLAGFORGE_MAX_REQUEST_BYTES: %d is below 1024", c.MaxBodyBytes))
	}
	if c.MaxMessageBytes < 1024 || c.MaxMessageBytes > 1<<30 {
		problems = append(problems, fmt.Errorf("FLAGFORGE_MAX_MESSAGE_BYTES: %d is not between 1024 and 1 GiB", c.MaxMessageBytes))
	}
	for name, d := range map[string]time.Duration{
		"FLAGFORGE_READ_HEADER_TIMEOUT": c.ReadHeaderTimeout, "FLAGFORGE_READ_TIMEOUT": c.ReadTimeout,
		"FLAGFORGE_IDLE_TIMEOUT": c.IdleTimeout, "FLAGFORGE_STREAM_WRITE_TIMEOUT": c.StreamWriteTimeout,
		"FLAGFORGE_PING_TIMEOUT": c.PingTimeout,
	} {
		if d < 100*time.Millisecond {
			problems = append(problems, fmt.Errorf("%s: %s is below 100ms", name, d))
		}
	}
	// gRPC refuses keepalive pings more often than every 10 s anyway.
	if c.PingInterval < 10*time.Second {
		problems = append(problems, fmt.Errorf("FLAGFORGE_PING_INTERVAL: %s is below 10s", c.PingInterval))
	}
	// Beyond 43 s (the backstop adds 2 s) a frozen HTTP/1.1 client may outlive
	// the 45 s the servers promise.
	if c.HTTP1StreamMaxAge < time.Second || c.HTTP1StreamMaxAge > 43*time.Second {
		problems = append(problems, fmt.Errorf("FLAGFORGE_HTTP1_STREAM_MAX_AGE: %s is not between 1s and 43s", c.HTTP1StreamMaxAge))
	}
	if c.ReadHeaderTimeout > c.ReadTimeout {
		problems = append(problems, errors.New("FLAGFORGE_READ_HEADER_TIMEOUT: must not exceed FLAGFORGE_READ_TIMEOUT"))
	}
	return errors.Join(problems...)
}

// Server returns an HTTP server for h with the limits applied: the body limit
// (Body), the read, header and idle timeouts, HTTP/1.1 and unencrypted HTTP/2
// (h2c; HTTP/2 over TLS when the server is given certificates), and HTTP/2
// connection health checks (pings).
func (c Config) Server(h http.Handler) *http.Server {
	c = c.WithDefaults()
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	return &http.Server{
		Handler:           c.Body(h),
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		Protocols:         &p,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout:  c.PingInterval,
			PingTimeout:      c.PingTimeout,
			WriteByteTimeout: c.StreamWriteTimeout,
		},
	}
}

// Body wraps h so that no request body larger than MaxBodyBytes reaches it: a
// larger declared Content-Length is answered 413 without reading; a body of
// unknown length is read up to the limit first (413 past it) and handed on from
// memory. Once a request is wholly read (at once without a body, when the
// handler reads its body to the end otherwise), the server's read deadline is
// lifted: ReadTimeout bounds the arrival of a request, not the handler's work.
func (c Config) Body(h http.Handler) http.Handler {
	limit := c.WithDefaults().MaxBodyBytes
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0:
			ClearReadDeadline(w)
		case r.ContentLength > limit:
			TooLarge(w, limit)
			return
		case r.ContentLength > 0:
			// The server never reads past a declared length; the cap is a second guard.
			r.Body = &readAll{ReadCloser: http.MaxBytesReader(w, r.Body, limit), w: w}
		default: // unknown length (chunked)
			body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
			switch {
			case int64(len(body)) > limit:
				TooLarge(w, limit)
				return
			case err != nil:
				http.Error(w, "reading the request body: "+err.Error(), http.StatusBadRequest)
				return
			}
			ClearReadDeadline(w)
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
		}
		h.ServeHTTP(w, r)
	})
}

// readAll lifts the read deadline when its body has been read to the end.
type readAll struct {
	io.ReadCloser
	w    http.ResponseWriter
	done bool
}

func (b *readAll) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) && !b.done {
		b.done = true
		ClearReadDeadline(b.w)
	}
	return n, err
}

// TooLarge answers 413 with a JSON status in the gateway's error shape (code 8,
// RESOURCE_EXHAUSTED, the gRPC code of the same refusal) and closes the
// connection, so the rest of the body is never read.
func TooLarge(w http.ResponseWriter, limit int64) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Connection", "close")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
	_, _ = io.WriteString(w, `{"code":8,"message":"the request body is larger than `+strconv.FormatInt(limit, 10)+` bytes","details":[]}`)
}

// ClearReadDeadline lifts the server's read deadline (ReadTimeout) for a request
// that has been read and now stays open: a stream or a long poll. Without it the
// connection's read deadline would end the request.
func ClearReadDeadline(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
}

// SetWriteDeadline bounds the next writes of a stream to d from now. It reports
// false when the response writer cannot take deadlines.
func SetWriteDeadline(w http.ResponseWriter, d time.Duration) bool {
	return http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d)) == nil
}

// Stream wraps a handler of long-lived responses (a stream, a long poll): the
// read deadline is lifted once the request is read, and every write, flush
// included, must complete within d, else the stream fails and the handler
// returns (its subscription freed).
func Stream(d time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ClearReadDeadline(w)
		h.ServeHTTP(&streamWriter{ResponseWriter: w, rc: http.NewResponseController(w), d: d}, r)
	})
}

// streamWriter sets a write deadline before every write and flush.
type streamWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
	d  time.Duration
}

// The deadline is lifted again once a flush returned: over HTTP/2 a write
// deadline is a deadline of the whole stream (its timer resets the stream when
// it fires, write pending or not), so a deadline left behind would end an idle
// stream StreamWriteTimeout after its last write, before its next heartbeat.
// Stream handlers flush after their writes.
func (s *streamWriter) Write(p []byte) (int, error) {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.d))
	return s.ResponseWriter.Write(p)
}

func (s *streamWriter) lift() { _ = s.rc.SetWriteDeadline(time.Time{}) }

// Flush implements http.Flusher.
func (s *streamWriter) Flush() {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.d))
	defer s.lift()
	_ = s.rc.Flush()
}

// FlushError flushes, reporting failure (http.ResponseController uses it).
func (s *streamWriter) FlushError() error {
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.d))
	defer s.lift()
	return s.rc.Flush()
}

// Unwrap lets http.ResponseController reach the server's writer.
func (s *streamWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// MaxAgeHeader is the request header through which MaxAge tells a REST gateway's
// stream how long it may last, in milliseconds: grpc-gateway forwards it to the
// gRPC call as the metadata "flagforge-stream-max-age-ms". A client's own value
// is removed.
const MaxAgeHeader = "Grpc-Metadata-Flagforge-Stream-Max-Age-Ms"

// MaxAgeMetadata is MaxAgeHeader as gRPC metadata.
const MaxAgeMetadata = "flagforge-stream-max-age-ms"

// maxAgeGrace is how long after its announced age a stream's context ends:
// a stream that ends itself (with a closing message) does so first.
const maxAgeGrace = 2 * time.Second

// MaxAge wraps a handler of streams and long polls: over HTTP/1.x, the response
// closes its connection (Connection: close) and the stream lasts a random 3/4
// to all of maxAge: MaxAgeHeader announces that age to a gateway's gRPC
// stream, which ends itself; the request's context ends maxAgeGrace later in
// any case (a handler that returns on it ends the stream cleanly). HTTP/2
// requests pass unchanged: pings find dead peers there.
func MaxAge(maxAge time.Duration, h http.Handler) http.Handler {
	if maxAge <= 0 {
		maxAge = Defaults().HTTP1StreamMaxAge
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del(MaxAgeHeader)
		if r.ProtoMajor != 1 {
			h.ServeHTTP(w, r)
			return
		}
		age := maxAge - time.Duration(rand.Int64N(int64(maxAge/4)+1))
		w.Header().Set("Connection", "close")
		r.Header.Set(MaxAgeHeader, strconv.FormatInt(age.Milliseconds(), 10))
		ctx, cancel := context.WithTimeout(r.Context(), age+maxAgeGrace)
		defer cancel()
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}
