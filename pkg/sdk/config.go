package sdk

import (
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"google.golang.org/grpc"
)

// Config configures a Client. The zero value of every optional field means its
// default (see the field); Validate reports every problem at once.
type Config struct {
	// SDKKey is a server SDK key of the environment (sent as "authorization: Bearer").
	// Required when Address or HTTPURL is set.
	SDKKey string
	// Address is the evaluator's gRPC address (host:port, or any gRPC target such
	// as "dns:///flagforge-evaluator-headless.flagforge.svc:9091") for
	// StreamManifest and ReportEvaluations. Empty: no streaming (polling only, or
	// offline).
	Address string
	// LoadBalancing is the gRPC balancing policy over the addresses Address
	// resolves to: "" or "pick_first" (gRPC's default: one evaluator at a time)
	// or "round_robin" (every ready evaluator, per call: with a dns:/// target on
	// a headless Service, reports spread over all pods and a stream that ends
	// resumes at once on another ready pod).
	LoadBalancing string
	// HTTPURL is the evaluator's HTTP base URL (e.g. "http://127.0.0.1:8081") for
	// the long-polling fallback (GET /v1/manifest). Empty: no polling.
	HTTPURL string
	// TrustedKeys are the manifest signing public keys (several during a rotation).
	// Required. Read PEM with manifest.ParsePublicKeys(manifest.LoadPEM(...)).
	TrustedKeys []ed25519.PublicKey

	// Bootstrap is a SignedManifest (protobuf binary or protojson) to start from,
	// verified like any other; BootstrapFile names a file holding one. With neither
	// Address nor HTTPURL the client runs offline on it.
	Bootstrap     []byte
	BootstrapFile string

	// TLS secures the gRPC connection and the SDK's own polling client (not a
	// caller's HTTPClient); nil: plaintext (loopback or a sidecar only). RootCAs
	// verifies the evaluator (nil: the system roots), Certificates or
	// GetClientCertificate present a client certificate (mTLS); build one from
	// PEM files, reloaded when they change, with tlsfiles.New(...).ClientConfig().
	// A handshake refused on a certificate makes WaitReady return ErrTLS.
	TLS *tls.Config
	// DialOptions are appended to the SDK's own gRPC dial options.
	DialOptions []grpc.DialOption
	// HTTPClient is used for polling; nil: a client of the SDK's own (closed by Close).
	HTTPClient *http.Client

	// Backoff bounds reconnection delays (default 1 s to 30 s, reset after 60 s
	// connected).
	Backoff Backoff
	// StreamFailuresBeforePolling is how many consecutive failed stream attempts
	// switch to polling (default 3; needs HTTPURL).
	StreamFailuresBeforePolling int
	// PollWait is the long-poll wait sent as ?wait= (default 30 s, at most 60 s).
	PollWait time.Duration
	// PollingPeriod is how long the client polls before it tries streaming again
	// (default 2 min).
	PollingPeriod time.Duration

	// StaleAfter: with no successful contact with the evaluator for this long
	// (manifest, delta, heartbeat or 304), Status says StateStale (default 2 min).
	StaleAfter time.Duration
	// ExpiryMargin: a manifest expiring within this margin makes Status say
	// StateStale (default 1 h). An expired manifest keeps serving (fail open).
	ExpiryMargin time.Duration

	// UsageInterval is the period of evaluation count reports (default 1 min).
	UsageInterval time.Duration
	// DisableUsage turns counting and reporting off (sampled contexts included).
	DisableUsage bool
	// SeenContextsPerMinute bounds the contexts sampled per minute for impact
	// previews (docs/release-safety.md, "Seen contexts"; default 100, negative:
	// none). The manifest's private attributes are removed before a context is
	// kept; samples are sent with the usage report.
	SeenContextsPerMinute int
	// MaxPendingCounts bounds the counts kept for reporting (counters plus batches
	// waiting to be sent; default 100,000). Beyond it counts are dropped and counted.
	MaxPendingCounts int

	// Logger receives the SDK's logs (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock (default time.Now); manifests expire by it.
	Now func() time.Time
}

// Backoff is the reconnection policy: retry n (0-based) waits a uniformly random
// duration between Min and min(Max, Min·2^(n+1)) ("full jitter" above a floor, so
// a fleet of clients spreads out and nobody retries faster than Min). The count
// restarts after a connection stayed up for ResetAfter.
type Backoff struct {
	Min        time.Duration // default 1 s
	Max        time.Duration // default 30 s
	ResetAfter time.Duration // default 60 s
}

// Delay is the wait before retry number attempt (0-based); r is a uniform random
// number in [0, 1). It is a pure function (tests pin r).
func (b Backoff) Delay(attempt int, r float64) time.Duration {
	if attempt < 0 {
		attempt = 0
	}
	ceil := b.Max
	if attempt < 62 {
		if c := b.Min << (attempt + 1); c > 0 && c < ceil {
			ceil = c
		}
	}
	if ceil <= b.Min {
		return b.Min
	}
	r = min(max(r, 0), 1)
	return b.Min + time.Duration(r*float64(ceil-b.Min))
}

// Defaults.
const (
	DefaultBackoffMin        = time.Second
	DefaultBackoffMax        = 30 * time.Second
	DefaultBackoffResetAfter = 60 * time.Second
	DefaultPollWait          = 30 * time.Second
	DefaultPollingPeriod     = 2 * time.Minute
	DefaultStaleAfter        = 2 * time.Minute
	DefaultExpiryMargin      = time.Hour
	DefaultUsageInterval     = time.Minute
	DefaultMaxPendingCounts  = 100_000
	maxPollWait              = 60 * time.Second
)

// withDefaults returns cfg with every zero optional field set to its default.
func (cfg Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.Backoff.Min, DefaultBackoffMin)
	def(&cfg.Backoff.Max, DefaultBackoffMax)
	def(&cfg.Backoff.ResetAfter, DefaultBackoffResetAfter)
	def(&cfg.PollWait, DefaultPollWait)
	def(&cfg.PollingPeriod, DefaultPollingPeriod)
	def(&cfg.StaleAfter, DefaultStaleAfter)
	def(&cfg.ExpiryMargin, DefaultExpiryMargin)
	def(&cfg.UsageInterval, DefaultUsageInterval)
	if cfg.StreamFailuresBeforePolling == 0 {
		cfg.StreamFailuresBeforePolling = 3
	}
	if cfg.MaxPendingCounts == 0 {
		cfg.MaxPendingCounts = DefaultMaxPendingCounts
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.HTTPURL = strings.TrimRight(cfg.HTTPURL, "/")
	return cfg
}

// Validate reports every problem of cfg (after defaults) at once.
func (cfg Config) Validate() error {
	var problems []error
	bad := func(format string, args ...any) { problems = append(problems, fmt.Errorf(format, args...)) }
	if len(cfg.TrustedKeys) == 0 {
		bad("TrustedKeys: at least one manifest signing key is required")
	}
	for i, k := range cfg.TrustedKeys {
		if len(k) != ed25519.PublicKeySize {
			bad("TrustedKeys[%d]: %d bytes, want %d", i, len(k), ed25519.PublicKeySize)
		}
	}
	if (cfg.Address != "" || cfg.HTTPURL != "") && cfg.SDKKey == "" {
		bad("SDKKey: required to reach the evaluator")
	}
	if cfg.HTTPURL != "" {
		if u, err := url.Parse(cfg.HTTPURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("HTTPURL: %q is not an http(s) base URL", cfg.HTTPURL)
		}
	}
	switch cfg.LoadBalancing {
	case "", "pick_first", "round_robin":
	default:
		bad("LoadBalancing: %q is not pick_first or round_robin", cfg.LoadBalancing)
	}
	if cfg.Bootstrap != nil && cfg.BootstrapFile != "" {
		bad("Bootstrap and BootstrapFile: set at most one")
	}
	if cfg.Backoff.Min <= 0 || cfg.Backoff.Max < cfg.Backoff.Min || cfg.Backoff.ResetAfter <= 0 {
		bad("Backoff: need 0 < Min <= Max and ResetAfter > 0 (got %v, %v, %v)", cfg.Backoff.Min, cfg.Backoff.Max, cfg.Backoff.ResetAfter)
	}
	if cfg.PollWait <= 0 || cfg.PollWait > maxPollWait {
		bad("PollWait: must be in (0, %v], got %v", maxPollWait, cfg.PollWait)
	}
	for name, d := range map[string]time.Duration{"PollingPeriod": cfg.PollingPeriod, "StaleAfter": cfg.StaleAfter,
		"ExpiryMargin": cfg.ExpiryMargin, "UsageInterval": cfg.UsageInterval} {
		if d < 0 {
			bad("%s: must not be negative, got %v", name, d)
		}
	}
	if cfg.StreamFailuresBeforePolling < 0 || cfg.MaxPendingCounts < 0 {
		bad("StreamFailuresBeforePolling and MaxPendingCounts: must not be negative")
	}
	return errors.Join(problems...)
}
