package publisher_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
	syncv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/sync/v1"
	"github.com/flagforge/flagforge/pkg/manifest"
	"github.com/flagforge/flagforge/pkg/rediskeys"
	"github.com/flagforge/flagforge/services/controlplane/internal/fanout"
	"github.com/flagforge/flagforge/services/controlplane/internal/publisher"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/postgres"
	"github.com/flagforge/flagforge/services/controlplane/internal/syncsvc"
	"github.com/flagforge/flagforge/services/controlplane/internal/testpg"
)

var (
	meta = store.WriteMeta{ActorID: "u-1", ActorName: "alice@example.com", RequestID: "req-1"}
	pref = store.ProjectRef{Org: "acme", Project: "web"}
	prod = store.EnvRef{Org: "acme", Project: "web", Environment: "production"}
)

const syncToken = "sync-token-for-tests"

func boolFlag(key string) *adminv1.Flag {
	return &adminv1.Flag{Key: key, Name: key, Type: manifestv1.FlagType_FLAG_TYPE_BOOLEAN,
		Variants: []*manifestv1.Variant{{Key: "on", Value: structpb.NewBoolValue(true)}, {Key: "off", Value: structpb.NewBoolValue(false)}}}
}

func config(on bool) *manifestv1.FlagConfig {
	return &manifestv1.FlagConfig{On: on, OffVariant: "off",
		DefaultServe: &manifestv1.Serve{Kind: &manifestv1.Serve_Variant{Variant: "on"}}}
}

// seedStore creates org acme, project web (three environments) and flag "a".
func seedStore(t testing.TB, st store.Store) {
	t.Helper()
	ctx := context.Background()
	if _, err := st.CreateOrg(ctx, meta, &adminv1.Organization{Key: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.CreateProject(ctx, meta, "acme", &adminv1.Project{Key: "web", Name: "Web"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateFlag(ctx, meta, pref, boolFlag("a"), config(false), nil); err != nil {
		t.Fatal(err)
	}
}

// pgStore returns a fresh seeded PostgreSQL database (as the app role) and its URL.
func pgStore(t testing.TB) (*postgres.Store, string) {
	t.Helper()
	url := testpg.AppURL(t, testpg.New(t))
	st, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	seedStore(t, st)
	return st, url
}

// redisClient connects to the test Redis server and returns it with a unique key
// prefix; keys under the prefix are deleted at the end. Unreachable: skip loudly,
// except under CI=true.
func redisClient(t testing.TB) (*redis.Client, string) {
	t.Helper()
	addr := os.Getenv("FLAGFORGE_TEST_REDIS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	c := redis.NewClient(&redis.Options{Addr: addr})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		_ = c.Close()
		msg := fmt.Sprintf("SKIPPING: Redis not reachable at %s (set FLAGFORGE_TEST_REDIS_ADDR): %v", addr, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	prefix := "fftest-" + randomHex() + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
		_ = c.Close()
	})
	return c, prefix
}

func randomHex() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newSigner(t testing.TB) (*manifest.Signer, []byte) {
	t.Helper()
	privPEM, _, err := manifest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return signerFromPEM(t, privPEM), privPEM
}

func signerFromPEM(t testing.TB, privPEM []byte) *manifest.Signer {
	t.Helper()
	priv, err := manifest.ParsePrivateKey(privPEM)
	if err != nil {
		t.Fatal(err)
	}
	s, err := manifest.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func verifierFor(t testing.TB, now func() time.Time, s *manifest.Signer) *manifest.Verifier {
	t.Helper()
	v, err := manifest.NewVerifier(now, s.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// running is a publisher running in a goroutine.
type running struct {
	p      *publisher.Publisher
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func (r *running) stop() {
	r.once.Do(func() {
		r.cancel()
		if err := <-r.done; err != nil {
			panic(err)
		}
	})
}

// leading reports the publisher's leader gauge.
func (r *running) leading() bool {
	mfs, _ := r.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "flagforge_publisher_leader" {
			return mf.GetMetric()[0].GetGauge().GetValue() == 1
		}
	}
	return false
}

func start(t testing.TB, cfg publisher.Config, d publisher.Deps) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	d.Metrics = reg
	p, err := publisher.New(cfg, d)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{p: p, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	t.Cleanup(r.stop)
	return r
}

func pgElector(t testing.TB, url string) *publisher.Postgres {
	t.Helper()
	e, err := publisher.NewPostgres(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Retry = 50 * time.Millisecond
	e.Heartbeat = 200 * time.Millisecond
	return e
}

// syncServer serves syncsvc on 127.0.0.1 and returns a connected client.
func syncServer(t testing.TB, st syncsvc.Store, s *manifest.Signer, hub *fanout.Hub) syncv1.SyncServiceClient {
	t.Helper()
	svc, err := syncsvc.New(syncsvc.Config{Token: syncToken, Heartbeat: time.Second}, syncsvc.Deps{Store: st, Signer: s, Hub: hub})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	syncv1.RegisterSyncServiceServer(gs, svc)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return syncv1.NewSyncServiceClient(conn)
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s (last error: %v)", timeout, what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func flagOn(m *manifestv1.Manifest, key string) (on, found bool) {
	for _, f := range m.GetFlags() {
		if f.GetKey() == key {
			return f.GetConfig().GetOn(), true
		}
	}
	return false, false
}

// readRedis reads and decodes the hash of target.
func readRedis(ctx context.Context, c *redis.Client, prefix, target string) (uint64, *manifestv1.SignedManifest, []byte, error) {
	h, err := c.HGetAll(ctx, rediskeys.Keys{Prefix: prefix}.Env(target)).Result()
	if err != nil {
		return 0, nil, nil, err
	}
	if len(h) == 0 {
		return 0, nil, nil, errors.New("no hash yet")
	}
	var sm manifestv1.SignedManifest
	if err := proto.Unmarshal([]byte(h["manifest"]), &sm); err != nil {
		return 0, nil, nil, err
	}
	var v uint64
	_, _ = fmt.Sscan(h["version"], &v)
	return v, &sm, []byte(h["delta"]), nil
}

// checkHistory verifies that every environment's stored versions are 1..N
// without gap, chained by digest, signed by s, with non-decreasing epochs.
func checkHistory(t testing.TB, st store.Store, s *manifest.Signer) map[store.EnvRef]*manifestv1.Manifest {
	t.Helper()
	ctx := context.Background()
	heads, err := st.ManifestHeads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v := verifierFor(t, nil, s)
	latest := map[store.EnvRef]*manifestv1.Manifest{}
	for _, h := range heads {
		ms, err := st.ManifestRange(ctx, h.Ref, 1, h.Version)
		if err != nil {
			t.Fatal(err)
		}
		if uint64(len(ms)) != h.Version {
			t.Fatalf("%v: %d versions stored for head %d", h.Ref, len(ms), h.Version)
		}
		var prev *store.StoredManifest
		for i, sm := range ms {
			if sm.Version != uint64(i+1) {
				t.Fatalf("%v: version %d at position %d (gap or duplicate)", h.Ref, sm.Version, i+1)
			}
			m, err := v.Manifest(sm.Signed)
			if err != nil {
				t.Fatalf("%v version %d does not verify: %v", h.Ref, sm.Version, err)
			}
			if m.GetVersion() != sm.Version || m.GetPublisherEpoch() != sm.Epoch {
				t.Fatalf("%v: payload version %d epoch %d, row %d %d", h.Ref, m.GetVersion(), m.GetPublisherEpoch(), sm.Version, sm.Epoch)
			}
			if prev != nil {
				if string(m.GetPreviousDigest()) != string(manifest.Digest(prev.Signed.GetPayload())) {
					t.Fatalf("%v: version %d does not chain to version %d", h.Ref, sm.Version, prev.Version)
				}
				if sm.Epoch < prev.Epoch {
					t.Fatalf("%v: epoch went back from %d to %d at version %d", h.Ref, prev.Epoch, sm.Epoch, sm.Version)
				}
			} else if len(m.GetPreviousDigest()) != 0 {
				t.Fatalf("%v: version 1 has a previous digest", h.Ref)
			}
			prev = sm
			latest[h.Ref] = m
		}
	}
	return latest
}
