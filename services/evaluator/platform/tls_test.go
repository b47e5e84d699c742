package platform

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	of "github.com/open-feature/go-sdk/openfeature"

	syncv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/sync/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/pkg/sdk"
	sdkof "github.com/flagforge/flagforge/pkg/sdk/openfeature"
	"github.com/flagforge/flagforge/pkg/tlsfiles"
	"github.com/flagforge/flagforge/pkg/tlsfiles/tlstest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// httpsClient trusts the test CA (and presents no client certificate).
func httpsClient(t *testing.T, caFile string) *http.Client {
	t.Helper()
	r, err := tlsfiles.New(tlsfiles.Files{CA: caFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: r.ClientConfig(), ForceAttemptHTTP2: true}}
}

// waitHTTPS polls url until it answers 200.
func waitHTTPS(t *testing.T, p *proc, c *http.Client, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p.Exited() {
			t.Fatalf("%s exited (%v):\n%s", p.name, p.err, tail(p.logs.String(), 40))
		}
		if r, err := c.Get(url); err == nil { //nolint:noctx // a short poll in a test
			_, _ = io.Copy(io.Discard, r.Body)
			_ = r.Body.Close()
			if r.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %s not ready after %s:\n%s", p.name, url, timeout, tail(p.logs.String(), 40))
}

// peerSerial is the serial number of the certificate the server at addr presents.
func peerSerial(t *testing.T, addr, caFile string) string {
	t.Helper()
	r, err := tlsfiles.New(tlsfiles.Files{CA: caFile}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", addr, r.ClientConfig())
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addr, err)
	}
	defer func() { _ = c.Close() }()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// TestTLSAndMutualTLSBetweenEvaluatorAndControlPlane runs both binaries with TLS
// on every listener and mTLS on the sync stream: the evaluator follows the
// control plane with its client certificate and serves over TLS; a client
// without a certificate, or with one from another CA, gets no manifests; the
// control plane picks up a replaced certificate without a restart.
func TestTLSAndMutualTLSBetweenEvaluatorAndControlPlane(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "flagforge-test")
	cpCert := ca.Issue(t, dir, "controlplane", "controlplane.test")
	evServer := ca.Issue(t, dir, "evaluator", "evaluator.test")
	evClient := ca.Issue(t, dir, "evaluator-client", "evaluator-1")
	rogue := tlstest.NewCA(t, "rogue").Issue(t, dir, "rogue", "evaluator-1")
	client := httpsClient(t, ca.File)

	token := "ffat_" + randomHex(20)
	cpHTTP, cpGRPC := freeAddr(t), freeAddr(t)
	cp := start(t, "control plane", controlPlaneBin, []string{
		"FLAGFORGE_DATABASE_URL=sqlite://" + filepath.Join(dir, "flagforge.db"),
		"FLAGFORGE_DATA_DIR=" + dir,
		"FLAGFORGE_GRPC_ADDR=" + cpGRPC, "FLAGFORGE_HTTP_ADDR=" + cpHTTP,
		"FLAGFORGE_LOG_LEVEL=warn",
		"FLAGFORGE_TLS_CERT_FILE=" + cpCert.Cert, "FLAGFORGE_TLS_KEY_FILE=" + cpCert.Key,
		"FLAGFORGE_TLS_CLIENT_CA_FILE=" + ca.File,
		"FLAGFORGE_BOOTSTRAP_ORG=acme", "FLAGFORGE_BOOTSTRAP_EMAIL=admin@example.com", "FLAGFORGE_BOOTSTRAP_TOKEN=" + token,
	}, "serve")
	waitHTTPS(t, cp, client, "https://"+cpHTTP+"/readyz", 30*time.Second)

	// Plain HTTP on the TLS port is refused.
	if r, err := http.Get("http://" + cpHTTP + "/healthz"); err == nil { //nolint:noctx // one call
		_ = r.Body.Close()
		if r.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP answered 200 on the TLS listener")
		}
	}
	// The REST gateway reaches the gRPC server (over its TLS loopback).
	body, _ := json.Marshal(map[string]any{"project": map[string]any{"key": "web", "name": "Web"}})
	req, _ := http.NewRequest(http.MethodPost, "https://"+cpHTTP+"/v1/orgs/acme/projects", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("create project over https: %d %s", resp.StatusCode, out)
	}

	syncToken, err := os.ReadFile(filepath.Join(dir, "sync-token"))
	if err != nil {
		t.Fatal(err)
	}
	// The sync stream: mTLS and the token are both required.
	for _, tc := range []struct {
		name        string
		files       tlsfiles.Files
		token       string
		wantCode    codes.Code
		wantMessage string
	}{
		{"without a client certificate", tlsfiles.Files{CA: ca.File}, string(syncToken), codes.Unauthenticated, "client certificate"},
		{"with the right certificate but a wrong token", tlsfiles.Files{CA: ca.File, Cert: evClient.Cert, Key: evClient.Key}, "wrong", codes.Unauthenticated, "token"},
		{"with the client certificate and the token", tlsfiles.Files{CA: ca.File, Cert: evClient.Cert, Key: evClient.Key}, string(syncToken), codes.OK, ""},
		{"with a certificate of another CA", tlsfiles.Files{CA: ca.File, Cert: rogue.Cert, Key: rogue.Key}, string(syncToken), codes.Unavailable, ""},
	} {
		t.Run("sync stream "+tc.name, func(t *testing.T) {
			r, err := tlsfiles.New(tc.files, nil)
			if err != nil {
				t.Fatal(err)
			}
			conn, err := grpc.NewClient(cpGRPC, grpc.WithTransportCredentials(credentials.NewTLS(r.ClientConfig())))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = conn.Close() }()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+strings.TrimSpace(tc.token))
			stream, err := syncv1.NewSyncServiceClient(conn).SyncManifests(ctx, &syncv1.SyncManifestsRequest{AllEnvironments: true})
			if err == nil {
				_, err = stream.Recv()
			}
			if got := status.Code(err); got != tc.wantCode || !strings.Contains(status.Convert(err).Message(), tc.wantMessage) {
				t.Fatalf("Recv: %v, want %s containing %q", err, tc.wantCode, tc.wantMessage)
			}
		})
	}

	// The evaluator follows the control plane over mTLS and serves over TLS.
	if out, err := runCmd(controlPlaneBin, "keys", "public", filepath.Join(dir, "signing-key.pem")); err != nil {
		t.Fatalf("keys public: %v\n%s", err, out)
	} else if err := os.WriteFile(filepath.Join(dir, "trusted.pem"), out, 0o600); err != nil {
		t.Fatal(err)
	}
	evHTTP, evGRPC := freeAddr(t), freeAddr(t)
	ev := start(t, "evaluator", evaluatorBin, []string{
		"FLAGFORGE_TRUSTED_KEYS=" + filepath.Join(dir, "trusted.pem"),
		"FLAGFORGE_DATA_DIR=" + filepath.Join(dir, "evaluator"),
		"FLAGFORGE_ENVIRONMENTS=acme/web/production",
		"FLAGFORGE_GRPC_ADDR=" + evGRPC, "FLAGFORGE_HTTP_ADDR=" + evHTTP, "FLAGFORGE_ADMIN_ADDR=",
		"FLAGFORGE_LOG_LEVEL=warn",
		"FLAGFORGE_SYNC_ADDR=" + cpGRPC, "FLAGFORGE_SYNC_TOKEN=" + strings.TrimSpace(string(syncToken)),
		"FLAGFORGE_SYNC_TLS_CA_FILE=" + ca.File, "FLAGFORGE_SYNC_TLS_CERT_FILE=" + evClient.Cert, "FLAGFORGE_SYNC_TLS_KEY_FILE=" + evClient.Key,
		"FLAGFORGE_TLS_CERT_FILE=" + evServer.Cert, "FLAGFORGE_TLS_KEY_FILE=" + evServer.Key,
	})
	waitHTTPS(t, ev, client, "https://"+evHTTP+"/readyz", 30*time.Second)
	if got := peerSerial(t, evGRPC, ca.File); got != evServer.Serial.String() {
		t.Fatalf("evaluator gRPC presents serial %s, want %s", got, evServer.Serial)
	}
	// The binary's healthcheck (the image's HEALTHCHECK) speaks TLS.
	hc := runCmdEnv(evaluatorBin, []string{"FLAGFORGE_HTTP_ADDR=" + evHTTP, "FLAGFORGE_TLS_CERT_FILE=" + evServer.Cert}, "healthcheck")
	if hc != nil {
		t.Fatalf("evaluator healthcheck over TLS: %v", hc)
	}

	sdkOverTLS(t, client, token, "https://"+cpHTTP, evGRPC, filepath.Join(dir, "trusted.pem"), ca, dir)

	// Rotation: replace the control plane's certificate files; new handshakes
	// get the new certificate without a restart.
	before := peerSerial(t, cpHTTP, ca.File)
	if before != cpCert.Serial.String() {
		t.Fatalf("control plane presents %s, want %s", before, cpCert.Serial)
	}
	renewed := ca.Issue(t, dir, "controlplane", "controlplane.test")
	deadline := time.Now().Add(10 * time.Second)
	for peerSerial(t, cpHTTP, ca.File) != renewed.Serial.String() {
		if time.Now().After(deadline) {
			t.Fatal("the control plane still presents the old certificate 10 s after the files changed")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := peerSerial(t, cpGRPC, ca.File); got != renewed.Serial.String() {
		t.Fatalf("control plane gRPC presents %s after the change, want %s", got, renewed.Serial)
	}
	// The evaluator's stream survives: it is still ready.
	waitHTTPS(t, ev, client, "https://"+evHTTP+"/readyz", 5*time.Second)
	ev.Stop()
	cp.Stop()
}

func runCmd(bin string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return execCommand(ctx, bin, nil, args...).Output()
}

func runCmdEnv(bin string, env []string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := execCommand(ctx, bin, env, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return nil
}

func execCommand(ctx context.Context, bin string, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// sdkOverTLS runs the Go SDK and its OpenFeature provider against the evaluator
// at evGRPC, which serves TLS with a certificate of ca: with ca as the root they
// sync and evaluate; with another CA, Init and WaitReady fail at once with the
// handshake's error (sdk.ErrTLS), not when their timeout ends.
func sdkOverTLS(t *testing.T, client *http.Client, token, cpURL, evGRPC, trustedFile string, ca *tlstest.CA, dir string) {
	t.Helper()
	post := func(path string, body any) map[string]any {
		t.Helper()
		raw, _ := json.Marshal(body)
		req, _ := http.NewRequest(http.MethodPost, cpURL+path, bytes.NewReader(raw))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		out := map[string]any{}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %d %v", path, resp.StatusCode, out)
		}
		return out
	}
	key := post("/v1/orgs/acme/projects/web/environments/production/sdk-keys", map[string]any{"name": "tls", "kind": "SDK_KEY_KIND_SERVER"})
	secret, _ := key["secret"].(string)
	post("/v1/orgs/acme/projects/web/flags", map[string]any{"flag": map[string]any{"key": "tls-flag", "type": "FLAG_TYPE_BOOLEAN"},
		"configs": map[string]any{"production": map[string]any{"on": true, "offVariant": "off", "defaultServe": map[string]any{"variant": "on"}}}})
	pemKeys, err := manifest.LoadPEM(trustedFile)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := manifest.ParsePublicKeys(pemKeys)
	if err != nil {
		t.Fatal(err)
	}
	newProvider := func(roots string) *sdkof.Provider {
		t.Helper()
		r, err := tlsfiles.New(tlsfiles.Files{CA: roots}, nil)
		if err != nil {
			t.Fatal(err)
		}
		c, err := sdk.New(sdk.Config{Address: evGRPC, SDKKey: secret, TrustedKeys: keys, TLS: r.ClientConfig(), DisableUsage: true,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		p := sdkof.New(c, sdkof.WithInitTimeout(30*time.Second))
		t.Cleanup(p.Shutdown)
		return p
	}

	p := newProvider(ca.File)
	if err := p.Init(of.EvaluationContext{}); err != nil {
		t.Fatalf("OpenFeature provider over TLS: Init: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		d := p.BooleanEvaluation(context.Background(), "tls-flag", false, of.FlattenedContext{"targetingKey": "user-1"})
		if d.Value && d.Error() == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tls-flag over TLS: %+v, want true", d)
		}
		time.Sleep(50 * time.Millisecond)
	}

	rogue := tlstest.NewCA(t, "not-the-evaluators")
	bad := newProvider(rogue.File)
	began := time.Now()
	err = bad.Init(of.EvaluationContext{})
	if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Fatalf("Init with a wrong CA: %v, want the handshake's error", err)
	}
	if waited := time.Since(began); waited > 15*time.Second {
		t.Fatalf("Init with a wrong CA took %v: it waited instead of reporting the handshake", waited)
	}
	if err := bad.Client().WaitReady(context.Background()); !errors.Is(err, sdk.ErrTLS) {
		t.Fatalf("WaitReady with a wrong CA: %v, want sdk.ErrTLS", err)
	}
}
