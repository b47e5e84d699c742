package sdk_test

import (
	"crypto/ed25519"
	"io"
	"log"
	"log/slog"
	"os"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func mustKeys() []ed25519.PublicKey {
	pem, err := manifest.LoadPEM("testdata/signing.pub.pem")
	if err != nil {
		log.Fatal(err)
	}
	keys, err := manifest.ParsePublicKeys(pem)
	if err != nil {
		log.Fatal(err)
	}
	return keys
}

// newUIOff is testdata's manifest at version 8 with new-ui turned off, signed with
// the test-only key.
func newUIOff() *manifestv1.SignedManifest {
	b, err := os.ReadFile("testdata/manifest.json")
	if err != nil {
		log.Fatal(err)
	}
	m := &manifestv1.Manifest{}
	if err := protojson.Unmarshal(b, m); err != nil {
		log.Fatal(err)
	}
	m.Version, m.IssuedAt = 8, timestamppb.Now()
	for _, f := range m.Flags {
		if f.Key == "new-ui" {
			f.Config.On = false
		}
	}
	kb, err := os.ReadFile("testdata/signing.pem")
	if err != nil {
		log.Fatal(err)
	}
	priv, err := manifest.ParsePrivateKey(kb)
	if err != nil {
		log.Fatal(err)
	}
	s, err := manifest.NewSigner(priv)
	if err != nil {
		log.Fatal(err)
	}
	sm, err := s.Manifest(m)
	if err != nil {
		log.Fatal(err)
	}
	return sm
}
