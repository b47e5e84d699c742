// Package openfeature is an OpenFeature provider (github.com/open-feature/go-sdk)
// built on the FlagForge Go SDK: flags are evaluated locally by the sdk.Client.
//
// Reasons and error codes map 1:1 (they use OpenFeature's names already):
// TARGETING_MATCH, SPLIT, DISABLED, DEFAULT, STATIC, ERROR; FLAG_NOT_FOUND,
// TYPE_MISMATCH, PARSE_ERROR, TARGETING_KEY_MISSING, PROVIDER_NOT_READY, GENERAL.
// PREREQUISITE_FAILED, which OpenFeature does not define, is passed through as a
// custom reason string. A context that the engine refuses (over a limit, an
// unsupported value type) is INVALID_CONTEXT.
//
// The provider implements the state handler (Init waits for the first manifest,
// Shutdown closes the client) and emits provider events: PROVIDER_READY (also when
// the client recovers from stale), PROVIDER_CONFIGURATION_CHANGED with the changed
// flag keys, PROVIDER_STALE, and PROVIDER_ERROR with PROVIDER_FATAL when the
// evaluator refuses the SDK key.
package openfeature

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	of "github.com/open-feature/go-sdk/openfeature"

	"github.com/flagforge/flagforge/pkg/sdk"
)

// Name is the provider's name in OpenFeature's metadata.
const Name = "flagforge"

// DefaultInitTimeout bounds Init's wait for the first manifest.
const DefaultInitTimeout = 10 * time.Second

// Provider is an OpenFeature FeatureProvider backed by an *sdk.Client. It is safe
// for concurrent use.
type Provider struct {
	client      *sdk.Client
	initTimeout time.Duration
	hooks       []of.Hook

	events chan of.Event
	done   chan struct{}

	mu          sync.Mutex
	initialized bool // Init returned: from now on READY events are ours to send
	removeEvent func()
	shutdown    sync.Once
}

// Compile-time checks of the interfaces OpenFeature looks for.
var (
	_ of.FeatureProvider = (*Provider)(nil)
	_ of.StateHandler    = (*Provider)(nil)
	_ of.EventHandler    = (*Provider)(nil)
)

// Option configures a Provider.
type Option func(*Provider)

// WithInitTimeout bounds how long Init waits for the first manifest (default 10 s).
// When it passes, Init fails (OpenFeature's ERROR state) and the provider sends
// PROVIDER_READY as soon as a manifest arrives.
func WithInitTimeout(d time.Duration) Option { return func(p *Provider) { p.initTimeout = d } }

// WithHooks adds hooks that run for every evaluation of this provider, for
// example otelflag's, which records each evaluation on the caller's span.
func WithHooks(h ...of.Hook) Option { return func(p *Provider) { p.hooks = append(p.hooks, h...) } }

// New returns a provider evaluating with c. The provider owns c from now on:
// Shutdown closes it.
func New(c *sdk.Client, opts ...Option) *Provider {
	p := &Provider{client: c, initTimeout: DefaultInitTimeout, events: make(chan of.Event, 64), done: make(chan struct{})}
	for _, o := range opts {
		o(p)
	}
	p.removeEvent = c.OnEvent(p.forward)
	return p
}

// Client is the SDK client behind the provider (for Status, OnChange, ...).
func (p *Provider) Client() *sdk.Client { return p.client }

// Metadata names the provider.
func (p *Provider) Metadata() of.Metadata { return of.Metadata{Name: Name} }

// Hooks are those given with WithHooks.
func (p *Provider) Hooks() []of.Hook { return p.hooks }

// Init waits for the first manifest (bounded by the init timeout). A refused SDK
// key is a PROVIDER_FATAL init error; a TLS handshake refused on a certificate
// (sdk.ErrTLS) fails Init at once with PROVIDER_NOT_READY and the handshake's
// error, and the client goes on trying.
func (p *Provider) Init(of.EvaluationContext) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.initTimeout)
	defer cancel()
	err := p.client.WaitReady(ctx)
	p.mu.Lock()
	p.initialized = true
	p.mu.Unlock()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sdk.ErrKeyRefused):
		return &of.ProviderInitError{ErrorCode: of.ProviderFatalCode, Message: err.Error()}
	case errors.Is(err, sdk.ErrTLS):
		// Not fatal: the client goes on trying (a certificate can be replaced).
		return &of.ProviderInitError{ErrorCode: of.ProviderNotReadyCode, Message: err.Error()}
	}
	return &of.ProviderInitError{ErrorCode: of.ProviderNotReadyCode, Message: fmt.Sprintf("no manifest yet: %v", err)}
}

// Shutdown closes the client and stops sending events.
func (p *Provider) Shutdown() {
	p.shutdown.Do(func() {
		p.removeEvent()
		_ = p.client.Close()
		close(p.done)
	})
}

// EventChannel is where the provider's events are sent.
func (p *Provider) EventChannel() <-chan of.Event { return p.events }

// forward turns client events into provider events (on the client's dispatcher
// goroutine; it waits for OpenFeature to take the event unless shut down).
func (p *Provider) forward(e sdk.Event) {
	ev := of.Event{ProviderName: Name}
	switch e.Type {
	case sdk.EventReady:
		p.mu.Lock()
		initialized := p.initialized
		p.mu.Unlock()
		if !initialized {
			return // OpenFeature sends READY itself when Init returns
		}
		ev.EventType, ev.Message = of.ProviderReady, fmt.Sprintf("manifest version %d", e.Version)
	case sdk.EventConfigurationChanged:
		ev.EventType, ev.FlagChanges = of.ProviderConfigChange, e.FlagKeys
		ev.Message = fmt.Sprintf("manifest version %d", e.Version)
	case sdk.EventStale:
		ev.EventType, ev.Message = of.ProviderStale, "no recent contact with the evaluator, or the manifest is about to expire"
	case sdk.EventError:
		ev.EventType, ev.ErrorCode = of.ProviderError, of.ProviderFatalCode
		if e.Err != nil {
			ev.Message = e.Err.Error()
		}
	default:
		return
	}
	select {
	case p.events <- ev:
	case <-p.done:
	}
}

// toContext converts OpenFeature's flattened context (targeting key included as
// "targetingKey") to an engine context. time.Time values become RFC 3339 strings.
func toContext(flat of.FlattenedContext) (*sdk.Context, error) {
	attrs := make(map[string]any, len(flat))
	for k, v := range flat {
		if t, ok := v.(time.Time); ok {
			v = t.UTC().Format(time.RFC3339Nano)
		}
		attrs[k] = v
	}
	return sdk.NewContext(attrs)
}

// detail converts an SDK detail to OpenFeature's resolution detail.
func detail[T any](d sdk.Detail[T]) of.GenericResolutionDetail[T] {
	out := of.GenericResolutionDetail[T]{Value: d.Value, ProviderResolutionDetail: of.ProviderResolutionDetail{
		Reason: of.Reason(d.Reason), Variant: d.Variant,
		FlagMetadata: of.FlagMetadata{"manifestVersion": int64(d.ManifestVersion)},
	}}
	if d.RuleID != "" {
		out.FlagMetadata["ruleId"] = d.RuleID
	}
	if d.ErrorCode != "" {
		out.ResolutionError = resolutionError(d.ErrorCode, d.ErrorMessage)
	}
	return out
}

func resolutionError(code sdk.ErrorCode, msg string) of.ResolutionError {
	switch code {
	case sdk.ErrorFlagNotFound:
		return of.NewFlagNotFoundResolutionError(msg)
	case sdk.ErrorTypeMismatch:
		return of.NewTypeMismatchResolutionError(msg)
	case sdk.ErrorParse:
		return of.NewParseErrorResolutionError(msg)
	case sdk.ErrorTargetingKeyMissing:
		return of.NewTargetingKeyMissingResolutionError(msg)
	case sdk.ErrorProviderNotReady:
		return of.NewProviderNotReadyResolutionError(msg)
	}
	return of.NewGeneralResolutionError(msg)
}

func invalidContext[T any](def T, err error) of.GenericResolutionDetail[T] {
	return of.GenericResolutionDetail[T]{Value: def, ProviderResolutionDetail: of.ProviderResolutionDetail{
		Reason: of.ErrorReason, ResolutionError: of.NewInvalidContextResolutionError(err.Error())}}
}

// BooleanEvaluation evaluates a boolean flag.
func (p *Provider) BooleanEvaluation(_ context.Context, flag string, def bool, flat of.FlattenedContext) of.BoolResolutionDetail {
	ctx, err := toContext(flat)
	if err != nil {
		return invalidContext(def, err)
	}
	return detail(p.client.BoolDetail(flag, ctx, def))
}

// StringEvaluation evaluates a string flag.
func (p *Provider) StringEvaluation(_ context.Context, flag string, def string, flat of.FlattenedContext) of.StringResolutionDetail {
	ctx, err := toContext(flat)
	if err != nil {
		return invalidContext(def, err)
	}
	return detail(p.client.StringDetail(flag, ctx, def))
}

// FloatEvaluation evaluates a number flag.
func (p *Provider) FloatEvaluation(_ context.Context, flag string, def float64, flat of.FlattenedContext) of.FloatResolutionDetail {
	ctx, err := toContext(flat)
	if err != nil {
		return invalidContext(def, err)
	}
	return detail(p.client.FloatDetail(flag, ctx, def))
}

// IntEvaluation evaluates a number flag as an integer (a non-integer value is a
// TYPE_MISMATCH).
func (p *Provider) IntEvaluation(_ context.Context, flag string, def int64, flat of.FlattenedContext) of.IntResolutionDetail {
	ctx, err := toContext(flat)
	if err != nil {
		return invalidContext(def, err)
	}
	return detail(p.client.IntDetail(flag, ctx, def))
}

// ObjectEvaluation evaluates a JSON flag.
func (p *Provider) ObjectEvaluation(_ context.Context, flag string, def any, flat of.FlattenedContext) of.InterfaceResolutionDetail {
	ctx, err := toContext(flat)
	if err != nil {
		return invalidContext(def, err)
	}
	return detail(p.client.JSONDetail(flag, ctx, def))
}
