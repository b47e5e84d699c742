package sdk_test

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/pkg/sdk"
)

// The testdata signing key is a test-only key: testdata/manifest.pb is signed with
// it and expires in 2100, so examples and tests can bootstrap offline.
const (
	testdataKey      = "testdata/signing.pem"
	testdataPubKey   = "testdata/signing.pub.pem"
	testdataManifest = "testdata/manifest.pb"
)

// testdataJSON is testdata/manifest.json: the manifest of testdata/manifest.pb.
const testdataJSON = "testdata/manifest.json"

func exampleJSON(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(testdataJSON)
	must(t, err)
	return string(b)
}

// TestWriteTestdata regenerates the testdata key and manifest when
// FLAGFORGE_UPDATE_TESTDATA=1; otherwise it checks they verify.
func TestWriteTestdata(t *testing.T) {
	if os.Getenv("FLAGFORGE_UPDATE_TESTDATA") == "1" {
		priv, pub, err := manifest.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		must(t, os.WriteFile(testdataKey, priv, 0o600))
		must(t, os.WriteFile(testdataPubKey, pub, 0o644))
		m := parseManifest(t, exampleJSON(t))
		sm, err := testSigner(t).Manifest(m)
		must(t, err)
		b, err := proto.Marshal(sm)
		must(t, err)
		must(t, os.WriteFile(testdataManifest, b, 0o644))
	}
	b, err := os.ReadFile(testdataManifest)
	must(t, err)
	sm, err := sdk.ReadSignedManifest(b)
	must(t, err)
	v, err := manifest.NewVerifier(nil, trustedKeys(t)...)
	must(t, err)
	if _, err := v.Manifest(sm); err != nil {
		t.Fatalf("testdata/manifest.pb does not verify (FLAGFORGE_UPDATE_TESTDATA=1 regenerates it): %v", err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func testSigner(t testing.TB) *manifest.Signer {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(testdataKey))
	must(t, err)
	priv, err := manifest.ParsePrivateKey(b)
	must(t, err)
	s, err := manifest.NewSigner(priv)
	must(t, err)
	return s
}

func trustedKeys(t testing.TB) []ed25519.PublicKey {
	t.Helper()
	pem, err := manifest.LoadPEM(testdataPubKey)
	must(t, err)
	keys, err := manifest.ParsePublicKeys(pem)
	must(t, err)
	return keys
}

func parseManifest(t testing.TB, js string) *manifestv1.Manifest {
	t.Helper()
	m := &manifestv1.Manifest{}
	must(t, protojson.Unmarshal([]byte(js), m))
	manifest.Canonicalize(m)
	return m
}

// exampleManifest is testdata's manifest at version, issued now (so a re-signing of
// the same version is newer), canonical.
func exampleManifest(t testing.TB, version uint64) *manifestv1.Manifest {
	m := parseManifest(t, exampleJSON(t))
	m.Version = version
	m.IssuedAt = timestamppb.New(time.Now())
	return m
}

func sign(t testing.TB, m *manifestv1.Manifest) *manifestv1.SignedManifest {
	t.Helper()
	sm, err := testSigner(t).Manifest(m)
	must(t, err)
	return sm
}

// offline returns a client bootstrapped from testdata/manifest.pb, closed at the end.
func offline(t testing.TB, mod ...func(*sdk.Config)) *sdk.Client {
	t.Helper()
	cfg := sdk.Config{TrustedKeys: trustedKeys(t), BootstrapFile: testdataManifest}
	for _, f := range mod {
		f(&cfg)
	}
	c, err := sdk.New(cfg)
	must(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}
