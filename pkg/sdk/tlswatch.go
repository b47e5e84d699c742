package sdk

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"google.golang.org/grpc/credentials"
)

// ErrTLS: a TLS handshake with the evaluator failed on a certificate or
// protocol error (a CA that did not sign the evaluator's certificate, a name
// the certificate does not carry, a refused client certificate, an evaluator
// that does not speak TLS). Waiting does not fix those, so WaitReady returns
// such an error (wrapping ErrTLS and the handshake's) instead of waiting for its
// context; the client keeps retrying in the background (a certificate can be
// replaced) and WaitReady may be called again.
var ErrTLS = errors.New("sdk: TLS handshake with the evaluator failed")

// handshakeWatch wraps the gRPC transport credentials to see each handshake's
// outcome as a typed error (gRPC reports it to calls only as text).
type handshakeWatch struct {
	credentials.TransportCredentials
	c *Client
}

func (w *handshakeWatch) ClientHandshake(ctx context.Context, authority string, conn net.Conn) (net.Conn, credentials.AuthInfo, error) {
	out, info, err := w.TransportCredentials.ClientHandshake(ctx, authority, conn)
	switch {
	case err == nil:
		w.c.setTLSError(nil)
	case configurationError(err):
		w.c.setTLSError(fmt.Errorf("%w (%s): %w", ErrTLS, authority, err))
	}
	return out, info, err
}

func (w *handshakeWatch) Clone() credentials.TransportCredentials {
	return &handshakeWatch{TransportCredentials: w.TransportCredentials.Clone(), c: w.c}
}

// configurationError reports whether a handshake error is one that waiting does
// not fix (not a timeout, a reset or a closed connection).
func configurationError(err error) bool {
	var (
		verify *tls.CertificateVerificationError
		record tls.RecordHeaderError
		alert  tls.AlertError
		op     *net.OpError
	)
	switch {
	case errors.As(err, &verify), errors.As(err, &record), errors.As(err, &alert):
		return true
	case errors.As(err, &op) && op.Op == "remote error": // a TLS alert from the evaluator
		return true
	}
	return false
}

// setTLSError records the last handshake's outcome (nil: it succeeded) and
// wakes WaitReady callers when it failed.
func (c *Client) setTLSError(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tlsErr = err
	if err != nil {
		c.lastErr = err
		close(c.tlsFailed)
		c.tlsFailed = make(chan struct{})
	}
}
