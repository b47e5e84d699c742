package sdk_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	"github.com/flagforge/flagforge/pkg/sdk"
	"github.com/flagforge/flagforge/pkg/tlsfiles"
	"github.com/flagforge/flagforge/pkg/tlsfiles/tlstest"
)

// startTLSFake is startFake serving TLS with srv; the common names of the
// client certificates that verified are sent on clients.
func startTLSFake(t *testing.T, srv *tls.Config) (*fakeEvaluator, string, <-chan string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	clients := make(chan string, 16)
	f := &fakeEvaluator{streams: make(chan *fakeStream, 16), counts: map[string]int64{}}
	s := grpc.NewServer(grpc.Creds(credentials.NewTLS(srv)),
		grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if p, ok := peer.FromContext(ss.Context()); ok {
				if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(ti.State.VerifiedChains) > 0 {
					select {
					case clients <- ti.State.VerifiedChains[0][0].Subject.CommonName:
					default:
					}
				}
			}
			return h(srv, ss)
		}))
	evaluationv1.RegisterEvaluationServiceServer(s, f)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return f, lis.Addr().String(), clients
}

// TestTheSDKSyncsOverTLSAndMutualTLS: with Config.TLS from PEM files made in
// the test, the client verifies the evaluator's certificate and syncs; when the
// evaluator requires client certificates, the client presents its own.
func TestTheSDKSyncsOverTLSAndMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "evaluators")
	server := ca.Issue(t, dir, "evaluator", "evaluator.test")
	client := ca.Issue(t, dir, "sdk", "checkout-service")
	for _, tc := range []struct {
		name       string
		mutual     bool
		clientCert tlsfiles.Files
		wantClient string
	}{
		{"TLS", false, tlsfiles.Files{CA: ca.File}, ""},
		{"mutual TLS", true, tlsfiles.Files{CA: ca.File, Cert: client.Cert, Key: client.Key}, "checkout-service"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := tlsfiles.New(tlsfiles.Files{Cert: server.Cert, Key: server.Key, CA: ca.File}, nil)
			must(t, err)
			f, addr, clients := startTLSFake(t, srv.ServerConfig(tc.mutual, "h2"))
			cli, err := tlsfiles.New(tc.clientCert, nil)
			must(t, err)
			cfg := fastConfig(addr)
			cfg.TrustedKeys, cfg.TLS = trustedKeys(t), cli.ClientConfig()
			c, err := sdk.New(cfg)
			must(t, err)
			defer func() { _ = c.Close() }()
			s := f.next(t)
			must(t, s.send(snapshotMsg(sign(t, chained(t, nil, 1, true)))))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			must(t, c.WaitReady(ctx))
			if d := c.BoolDetail("new-ui", nil, false); c.Status().ManifestVersion != 1 || d.Reason == sdk.ReasonDisabled || d.ErrorCode != "" {
				t.Fatalf("over TLS: version %d, new-ui %+v; want version 1 with new-ui on", c.Status().ManifestVersion, d)
			}
			if tc.wantClient != "" {
				select {
				case cn := <-clients:
					if cn != tc.wantClient {
						t.Fatalf("the evaluator verified client %q, want %q", cn, tc.wantClient)
					}
				default:
					t.Fatal("the evaluator saw no verified client certificate")
				}
			}
		})
	}
}

// TestAHandshakeRefusedOnACertificateEndsWaitReadyAtOnce: a wrong CA, or a
// server name the certificate does not carry, makes WaitReady return an error
// wrapping ErrTLS and naming the cause within a second or two, not when its
// context ends; Status says the same.
func TestAHandshakeRefusedOnACertificateEndsWaitReadyAtOnce(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "evaluators")
	server := ca.Issue(t, dir, "evaluator", "evaluator.test")
	srv, err := tlsfiles.New(tlsfiles.Files{Cert: server.Cert, Key: server.Key}, nil)
	must(t, err)
	_, addr, _ := startTLSFake(t, srv.ServerConfig(false, "h2"))
	for _, tc := range []struct {
		name  string
		files tlsfiles.Files
		want  string
	}{
		{"a CA that did not sign the evaluator's certificate", tlsfiles.Files{CA: tlstest.NewCA(t, "other").File}, "certificate signed by unknown authority"},
		{"a server name the certificate does not carry", tlsfiles.Files{CA: ca.File, ServerName: "flagforge-evaluator"}, "flagforge-evaluator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cli, err := tlsfiles.New(tc.files, nil)
			must(t, err)
			cfg := fastConfig(addr)
			cfg.TrustedKeys, cfg.TLS = trustedKeys(t), cli.ClientConfig()
			c, err := sdk.New(cfg)
			must(t, err)
			defer func() { _ = c.Close() }()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			began := time.Now()
			err = c.WaitReady(ctx)
			if !errors.Is(err, sdk.ErrTLS) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("WaitReady: %v, want an error wrapping ErrTLS naming %q", err, tc.want)
			}
			if waited := time.Since(began); waited > 10*time.Second {
				t.Fatalf("WaitReady took %v: it waited for its context instead of reporting the handshake", waited)
			}
			if st := c.Status(); st.State != sdk.StateNotReady || st.LastError == nil || !strings.Contains(st.LastError.Error(), tc.want) {
				t.Fatalf("Status: %+v, want NOT_READY with the handshake error", st)
			}
		})
	}
}
