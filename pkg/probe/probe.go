// Package probe is the `healthcheck` subcommand of the service binaries: an HTTP
// GET of the process's own /healthz, for container HEALTHCHECKs in images that
// carry no shell and no curl (distroless, scratch).
package probe

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// Target turns a listen address into the address to dial: a wildcard or empty
// host (":8081", "0.0.0.0:8081", "[::]:8081") becomes loopback.
func Target(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("probe: listen address %q: %w", listen, err)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::", "[::]":
		host = "::1"
	}
	return net.JoinHostPort(host, port), nil
}

// Check GETs path on the HTTP server listening at listen (https when useTLS: the
// certificate is not verified, the probe only asks the process it runs beside
// whether it is up) and returns nil on a 2xx answer within timeout.
func Check(ctx context.Context, listen, path string, useTLS bool, timeout time.Duration) error {
	addr, err := Target(listen)
	if err != nil {
		return err
	}
	scheme := "http"
	tr := &http.Transport{DisableKeepAlives: true}
	if useTLS {
		scheme = "https"
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // loopback self-probe, see doc
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("probe: %s%s answered %s", addr, path, resp.Status)
	}
	return nil
}

// Command is the `healthcheck` subcommand: probe [-addr ADDR] [-path PATH] [-tls].
// ADDR defaults to $FLAGFORGE_HTTP_ADDR, else defaultAddr; -tls defaults to on
// when $FLAGFORGE_TLS_CERT_FILE is set (the HTTP listener then serves TLS).
func Command(ctx context.Context, args []string, defaultAddr string, stderr io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", envOr("FLAGFORGE_HTTP_ADDR", defaultAddr), "HTTP listen address of the process to probe")
	path := fs.String("path", "/healthz", "path to GET")
	useTLS := fs.Bool("tls", os.Getenv("FLAGFORGE_TLS_CERT_FILE") != "", "probe over https")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return Check(ctx, *addr, *path, *useTLS, *timeout)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
