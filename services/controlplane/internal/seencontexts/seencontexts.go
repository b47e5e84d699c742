// Package seencontexts keeps the evaluation contexts evaluators and SDKs sampled
// (docs/release-safety.md, "Seen contexts"): it records what evaluators report
// (removing the project's private attributes once more, for reporters that did
// not know them yet), keeps the newest Keep per environment for Retention, prunes
// the rest, and serves flagforge.admin.v1.SeenContextService: listing them and
// the project's context policy (which attributes are private).
//
// Authentication and authorization are the admin API's interceptors'; the
// reporting path is the sync service's (service token).
package seencontexts

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/flagforge/flagforge/pkg/errs"
	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	evaluationv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/evaluation/v1"
	"github.com/flagforge/flagforge/pkg/seen"
	"github.com/flagforge/flagforge/services/controlplane/internal/actor"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// Config says how many seen contexts are kept and for how long.
type Config struct {
	// Keep is the number of most recently seen contexts kept per environment
	// (FLAGFORGE_SEEN_CONTEXTS_KEEP, default 10,000).
	Keep int `env:"SEEN_CONTEXTS_KEEP, default=10000"`
	// Retention is how long a context not seen again is kept
	// (FLAGFORGE_SEEN_CONTEXTS_RETENTION, default 7 days).
	Retention time.Duration `env:"SEEN_CONTEXTS_RETENTION, default=168h"`
	// PruneInterval is the period of the pruning of every environment (default 1h).
	PruneInterval time.Duration
}

// Validate applies defaults and checks c.
func (c *Config) Validate() error {
	if c.Keep == 0 {
		c.Keep = 10_000
	}
	if c.Retention == 0 {
		c.Retention = 7 * 24 * time.Hour
	}
	if c.PruneInterval == 0 {
		c.PruneInterval = time.Hour
	}
	if c.Keep < 0 || c.Keep > 1_000_000 {
		return errors.New("FLAGFORGE_SEEN_CONTEXTS_KEEP: must be between 1 and 1000000")
	}
	if c.Retention < time.Minute || c.PruneInterval < 0 {
		return errors.New("FLAGFORGE_SEEN_CONTEXTS_RETENTION: must be at least 1m")
	}
	return nil
}

// Store is what the package reads and writes.
type Store interface {
	RecordSeenContexts(ctx context.Context, ref store.EnvRef, cs []store.SeenContext, keep int, since time.Time) error
	ListSeenContexts(ctx context.Context, ref store.EnvRef, since time.Time, p store.Page) ([]*adminv1.SeenContext, string, int64, error)
	PruneSeenContexts(ctx context.Context, before time.Time) (int64, error)
	ContextPolicy(ctx context.Context, ref store.ProjectRef) (*adminv1.ContextPolicy, error)
	SetContextPolicy(ctx context.Context, m store.WriteMeta, ref store.ProjectRef, p *adminv1.ContextPolicy) (*adminv1.ContextPolicy, error)
}

// Service records, prunes and serves seen contexts.
type Service struct {
	adminv1.UnimplementedSeenContextServiceServer
	cfg Config
	st  Store
	now func() time.Time
	log *slog.Logger
}

var _ adminv1.SeenContextServiceServer = (*Service)(nil)

// New returns the service; cfg is validated (defaults applied). now nil:
// time.Now; log nil: slog.Default().
func New(cfg Config, st Store, now func() time.Time, log *slog.Logger) (*Service, error) {
	if st == nil {
		return nil, errors.New("seencontexts: a store is required")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{cfg: cfg, st: st, now: now, log: log.With("component", "seen_contexts")}, nil
}

// Config is the validated configuration.
func (s *Service) Config() Config { return s.cfg }

// Record stores contexts an evaluator reported for ref: the project's private
// attributes are removed, each is identified by the digest of its canonical
// JSON, and the environment is pruned to Keep within Retention.
func (s *Service) Record(ctx context.Context, ref store.EnvRef, cs []*evaluationv1.SampledContext) error {
	if len(cs) == 0 {
		return nil
	}
	pol, err := s.st.ContextPolicy(ctx, store.ProjectRef{Org: ref.Org, Project: ref.Project})
	if err != nil {
		return err
	}
	now := s.now().UTC()
	out := make([]store.SeenContext, 0, len(cs))
	seenDigest := map[string]int{}
	for _, c := range cs {
		attrs := seen.Redact(c.GetAttributes().AsMap(), pol.GetPrivateAttributes())
		if len(attrs) == 0 {
			continue
		}
		b, digest, err := seen.Canonical(attrs)
		if err != nil {
			continue
		}
		at := now
		if t := c.GetTime(); t != nil && t.AsTime().Before(now) && t.AsTime().After(now.Add(-s.cfg.Retention)) {
			at = t.AsTime()
		}
		if i, dup := seenDigest[digest]; dup {
			if at.After(out[i].Seen) {
				out[i].Seen = at
			}
			continue
		}
		seenDigest[digest] = len(out)
		out = append(out, store.SeenContext{Digest: digest, Attributes: b, Seen: at})
	}
	return s.st.RecordSeenContexts(ctx, ref, out, s.cfg.Keep, now.Add(-s.cfg.Retention))
}

// Run prunes contexts older than Retention in every environment every
// PruneInterval until ctx ends (environments that stopped reporting included).
func (s *Service) Run(ctx context.Context) error {
	if s.cfg.PruneInterval <= 0 {
		return nil
	}
	t := time.NewTicker(s.cfg.PruneInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if n, err := s.st.PruneSeenContexts(ctx, s.now().Add(-s.cfg.Retention)); err != nil {
				if ctx.Err() == nil {
					s.log.WarnContext(ctx, "pruning seen contexts failed; retrying next interval", "err", err)
				}
			} else if n > 0 {
				s.log.InfoContext(ctx, "pruned seen contexts", "deleted", n)
			}
		}
	}
}

// Contexts returns the contexts of ref within retention, most recent first (at
// most Keep): what impact previews evaluate.
func (s *Service) Contexts(ctx context.Context, ref store.EnvRef) ([]*adminv1.SeenContext, error) {
	var out []*adminv1.SeenContext
	for page := (store.Page{Size: 1000}); ; {
		cs, next, _, err := s.st.ListSeenContexts(ctx, ref, s.now().Add(-s.cfg.Retention), page)
		if err != nil {
			return nil, err
		}
		out = append(out, cs...)
		if next == "" || len(out) >= s.cfg.Keep {
			return out, nil
		}
		page.Token = next
	}
}

var keyRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// violations collects field errors, all reported at once.
type violations []errs.Violation

func (v *violations) key(field, s string) {
	switch {
	case s == "":
		*v = append(*v, errs.Violation{Field: field, Description: "is required"})
	case !keyRE.MatchString(s):
		*v = append(*v, errs.Violation{Field: field, Description: "must be a lowercase slug matching ^[a-z0-9][a-z0-9_.-]{0,63}$"})
	}
}

func (v violations) err() error {
	if len(v) == 0 {
		return nil
	}
	return errs.InvalidAll(v)
}

// ListSeenContexts lists an environment's seen contexts, most recent first.
func (s *Service) ListSeenContexts(ctx context.Context, req *adminv1.ListSeenContextsRequest) (*adminv1.ListSeenContextsResponse, error) {
	var v violations
	v.key("org", req.GetOrg())
	v.key("project", req.GetProject())
	v.key("environment", req.GetEnvironment())
	if n := req.GetPageSize(); n < 0 || n > 1000 {
		v = append(v, errs.Violation{Field: "page_size", Description: "must be between 0 and 1000"})
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	if size == 0 {
		size = 100
	}
	ref := store.EnvRef{Org: req.GetOrg(), Project: req.GetProject(), Environment: req.GetEnvironment()}
	cs, next, total, err := s.st.ListSeenContexts(ctx, ref, s.now().Add(-s.cfg.Retention), store.Page{Size: size, Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	return &adminv1.ListSeenContextsResponse{Contexts: cs, NextPageToken: next, Total: total}, nil
}

// GetContextPolicy returns the project's private attributes.
func (s *Service) GetContextPolicy(ctx context.Context, req *adminv1.GetContextPolicyRequest) (*adminv1.GetContextPolicyResponse, error) {
	var v violations
	v.key("org", req.GetOrg())
	v.key("project", req.GetProject())
	if err := v.err(); err != nil {
		return nil, err
	}
	p, err := s.st.ContextPolicy(ctx, store.ProjectRef{Org: req.GetOrg(), Project: req.GetProject()})
	if err != nil {
		return nil, err
	}
	return &adminv1.GetContextPolicyResponse{Policy: p}, nil
}

// MaxPrivateAttributes bounds a project's private attribute list.
const MaxPrivateAttributes = 100

// UpdateContextPolicy replaces the project's private attributes.
func (s *Service) UpdateContextPolicy(ctx context.Context, req *adminv1.UpdateContextPolicyRequest) (*adminv1.UpdateContextPolicyResponse, error) {
	var v violations
	v.key("org", req.GetOrg())
	v.key("project", req.GetProject())
	if req.GetPolicy() == nil {
		v = append(v, errs.Violation{Field: "policy", Description: "is required"})
	}
	attrs := req.GetPolicy().GetPrivateAttributes()
	if len(attrs) > MaxPrivateAttributes {
		v = append(v, errs.Violation{Field: "policy.private_attributes", Description: fmt.Sprintf("at most %d attributes", MaxPrivateAttributes)})
	}
	for i, a := range attrs {
		if a == "" || len(a) > 256 || !utf8.ValidString(a) {
			v = append(v, errs.Violation{Field: fmt.Sprintf("policy.private_attributes[%d]", i),
				Description: "must be an attribute name of 1 to 256 bytes of UTF-8"})
		}
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	p := actor.PrincipalFrom(ctx)
	m := store.WriteMeta{ActorID: p.ID(), ActorName: p.Name(), RequestID: actor.RequestID(ctx)}
	out, err := s.st.SetContextPolicy(ctx, m, store.ProjectRef{Org: req.GetOrg(), Project: req.GetProject()}, req.GetPolicy())
	if err != nil {
		return nil, err
	}
	return &adminv1.UpdateContextPolicyResponse{Policy: out}, nil
}
