package tlsfiles

import (
	"crypto/tls"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/flagforge/flagforge/pkg/tlsfiles/tlstest"
)

// serve accepts TLS connections on loopback and reports each handshake's
// verified-client flag; it answers "ok".
func serve(t *testing.T, cfg *tls.Config) (addr string, verified chan bool) {
	t.Helper()
	lis, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lis.Close() })
	verified = make(chan bool, 16)
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if err := tc.Handshake(); err == nil {
				verified <- VerifiedClient(tc.ConnectionState())
				_, _ = tc.Write([]byte("ok"))
			}
			_ = tc.Close()
		}
	}()
	return lis.Addr().String(), verified
}

func dial(addr string, cfg *tls.Config) (*x509Serial, error) {
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	defer func() { _ = c.Close() }()
	if _, err := io.ReadAll(c); err != nil {
		return nil, err
	}
	return &x509Serial{c.ConnectionState().PeerCertificates[0].SerialNumber.String()}, nil
}

type x509Serial struct{ s string }

func TestServerReloadsItsCertificateWhenTheFilesChange(t *testing.T) {
	ca := tlstest.NewCA(t, "test")
	first := ca.Issue(t, "", "server", "server.test")
	var reloadErrs []error
	r, err := New(Files{Cert: first.Cert, Key: first.Key}, func(err error) { reloadErrs = append(reloadErrs, err) })
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	r.now = func() time.Time { return now }
	addr, _ := serve(t, r.ServerConfig(false))
	client, err := New(Files{CA: ca.File, ServerName: "server.test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := dial(addr, client.ClientConfig())
	if err != nil || got.s != first.Serial.String() {
		t.Fatalf("first handshake: %v, %v", got, err)
	}

	second := ca.Issue(t, "", "server", "server.test") // same files, new certificate
	got, err = dial(addr, client.ClientConfig())
	if err != nil || got.s != first.Serial.String() {
		t.Fatalf("within the second, the old certificate stays: %v, %v", got, err)
	}
	now = now.Add(2 * time.Second)
	got, err = dial(addr, client.ClientConfig())
	if err != nil || got.s != second.Serial.String() {
		t.Fatalf("after the change: serial %v (%v), want %s", got, err, second.Serial)
	}
	if len(reloadErrs) != 0 {
		t.Fatalf("reload errors: %v", reloadErrs)
	}
}

func TestABrokenFileKeepsThePreviousCertificate(t *testing.T) {
	ca := tlstest.NewCA(t, "test")
	p := ca.Issue(t, "", "server", "server.test")
	var reloadErrs []error
	r, err := New(Files{Cert: p.Cert, Key: p.Key}, func(err error) { reloadErrs = append(reloadErrs, err) })
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	r.now = func() time.Time { return now }
	other := ca.Issue(t, t.TempDir(), "other", "server.test")
	// The certificate changes but the key does not match it.
	if err := copyFile(other.Cert, p.Cert); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Second)
	addr, _ := serve(t, r.ServerConfig(false))
	client, _ := New(Files{CA: ca.File, ServerName: "server.test"}, nil)
	got, err := dial(addr, client.ClientConfig())
	if err != nil || got.s != p.Serial.String() {
		t.Fatalf("serial %v (%v), want the previous %s", got, err, p.Serial)
	}
	if len(reloadErrs) == 0 {
		t.Fatal("the failed reload was not reported")
	}
}

func TestMutualTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "test")
	srvPair := ca.Issue(t, "", "server", "server.test")
	cliPair := ca.Issue(t, "", "client", "evaluator")
	rogue := tlstest.NewCA(t, "rogue").Issue(t, "", "rogue", "evaluator")
	srv, err := New(Files{Cert: srvPair.Cert, Key: srvPair.Key, CA: ca.File}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		require bool
		client  Files
		ok      bool
		checked bool
	}{
		{"a client certificate from the CA is verified", true, Files{CA: ca.File, Cert: cliPair.Cert, Key: cliPair.Key, ServerName: "server.test"}, true, true},
		{"required: no client certificate is refused", true, Files{CA: ca.File, ServerName: "server.test"}, false, false},
		{"required: a certificate from another CA is refused", true, Files{CA: ca.File, Cert: rogue.Cert, Key: rogue.Key, ServerName: "server.test"}, false, false},
		{"optional: no client certificate connects unverified", false, Files{CA: ca.File, ServerName: "server.test"}, true, false},
		{"optional: a certificate from another CA is still refused", false, Files{CA: ca.File, Cert: rogue.Cert, Key: rogue.Key, ServerName: "server.test"}, false, false},
		{"the client refuses a server name the certificate lacks", false, Files{CA: ca.File, ServerName: "other.test"}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, verified := serve(t, srv.ServerConfig(tc.require))
			cli, err := New(tc.client, nil)
			if err != nil {
				t.Fatal(err)
			}
			_, err = dial(addr, cli.ClientConfig())
			if (err == nil) != tc.ok {
				t.Fatalf("dial: %v, want ok=%v", err, tc.ok)
			}
			if tc.ok {
				if v := <-verified; v != tc.checked {
					t.Fatalf("verified client = %v, want %v", v, tc.checked)
				}
			}
		})
	}
}

func TestFilesValidate(t *testing.T) {
	if err := (Files{Cert: "a.pem"}).Validate(); err == nil {
		t.Error("a certificate without a key accepted")
	}
	if err := (Files{CA: "/nonexistent/ca.pem"}).Validate(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
	if _, err := New(Files{Cert: "/nonexistent/c.pem", Key: "/nonexistent/k.pem"}, nil); err == nil {
		t.Error("New accepted missing files")
	}
}

func copyFile(from, to string) error {
	data, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, data, 0o600)
}
