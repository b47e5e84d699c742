// Package tlsfiles builds TLS configurations from PEM files and reloads them when
// the files change, so certificates rotated by cert-manager, Vault or a cron job
// take effect without a restart. Servers re-check their files at most once a
// second, on a handshake; a file that fails to load keeps the previous
// certificate in use (and the error is reported through OnError).
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Files names the PEM files of one side of a connection.
type Files struct {
	// Cert and Key are this side's certificate chain and private key; both or
	// neither.
	Cert, Key string
	// CA verifies the peer: on a server, client certificates (mTLS); on a client,
	// the server's certificate ("" on a client: the system roots).
	CA string
	// ServerName overrides the name a client verifies (default: the dialled host).
	ServerName string
}

// Enabled reports whether any file is named.
func (f Files) Enabled() bool { return f.Cert != "" || f.Key != "" || f.CA != "" }

// Validate checks that the files go together and exist.
func (f Files) Validate() error {
	if (f.Cert == "") != (f.Key == "") {
		return errors.New("tls: a certificate file and a key file go together")
	}
	for _, p := range []string{f.Cert, f.Key, f.CA} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
	}
	return nil
}

// Reloader holds the loaded material and reloads it when a file changes.
type Reloader struct {
	files   Files
	onError func(error)
	now     func() time.Time

	mu      sync.Mutex
	stamp   string
	checked time.Time
	cert    *tls.Certificate
	pool    *x509.CertPool
}

// New loads the files now (an error if they do not load). onError receives
// reload failures (nil: ignored).
func New(f Files, onError func(error)) (*Reloader, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	if onError == nil {
		onError = func(error) {}
	}
	r := &Reloader{files: f, onError: onError, now: time.Now}
	stamp, err := r.stampFiles()
	if err != nil {
		return nil, err
	}
	if err := r.load(stamp); err != nil {
		return nil, err
	}
	return r, nil
}

// stampFiles fingerprints the files by size and modification time.
func (r *Reloader) stampFiles() (string, error) {
	var s string
	for _, p := range []string{r.files.Cert, r.files.Key, r.files.CA} {
		if p == "" {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("tls: %w", err)
		}
		s += fmt.Sprintf("%s:%d:%d;", p, fi.Size(), fi.ModTime().UnixNano())
	}
	return s, nil
}

func (r *Reloader) load(stamp string) error {
	var cert *tls.Certificate
	if r.files.Cert != "" {
		c, err := tls.LoadX509KeyPair(r.files.Cert, r.files.Key)
		if err != nil {
			return fmt.Errorf("tls: %s / %s: %w", r.files.Cert, r.files.Key, err)
		}
		cert = &c
	}
	var pool *x509.CertPool
	if r.files.CA != "" {
		pem, err := os.ReadFile(r.files.CA)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("tls: %s holds no PEM certificate", r.files.CA)
		}
	}
	r.cert, r.pool, r.stamp = cert, pool, stamp
	return nil
}

// current returns the material, reloading it first when a file changed (checked
// at most once a second).
func (r *Reloader) current() (*tls.Certificate, *x509.CertPool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); now.Sub(r.checked) >= time.Second {
		r.checked = now
		stamp, err := r.stampFiles()
		switch {
		case err != nil:
			r.onError(err)
		case stamp != r.stamp:
			if err := r.load(stamp); err != nil {
				r.onError(err)
			}
		}
	}
	return r.cert, r.pool
}

// ServerConfig is a server configuration offering nextProtos (ALPN, e.g. "h2")
// that presents the current certificate and, when a CA file is named, verifies
// client certificates against it. requireClientCert refuses clients without
// one; otherwise a client certificate is verified when presented (callers then
// check it per call: see VerifiedClient).
func (r *Reloader) ServerConfig(requireClientCert bool, nextProtos ...string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: nextProtos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			cert, pool := r.current()
			c := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: nextProtos}
			if cert != nil {
				c.Certificates = []tls.Certificate{*cert}
			}
			if pool != nil {
				c.ClientCAs = pool
				c.ClientAuth = tls.VerifyClientCertIfGiven
				if requireClientCert {
					c.ClientAuth = tls.RequireAndVerifyClientCert
				}
			}
			return c, nil
		},
	}
}

// ClientConfig is a client configuration that verifies the server against the
// CA file (else the system roots) and presents the current client certificate
// when one is named (mTLS).
func (r *Reloader) ClientConfig() *tls.Config {
	_, pool := r.current()
	c := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, ServerName: r.files.ServerName}
	if r.files.Cert != "" {
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, _ := r.current()
			return cert, nil
		}
	}
	return c
}

// VerifiedClient reports whether a connection state carries a client
// certificate that verified against the server's CA.
func VerifiedClient(cs tls.ConnectionState) bool { return len(cs.VerifiedChains) > 0 }
