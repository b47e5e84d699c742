package server

import (
	"context"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/flagforge/flagforge/pkg/errs"
	"github.com/flagforge/flagforge/services/controlplane/internal/actor"
	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"google.golang.org/grpc/metadata"
)

// Limits on request fields.
const (
	maxName        = 200
	maxDescription = 2000
	maxComment     = 1000
	maxIdemKey     = 200
	maxPageSize    = 1000
	maxTags        = 50
	maxListValues  = 10000
)

// IdempotencyHeader is the gRPC metadata key (and, through the gateway, the HTTP
// header "Idempotency-Key") that supplies an idempotency key when the request
// field is empty.
const IdempotencyHeader = "idempotency-key"

var keyRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// checks collects every failed field check of a request: err is nil or an
// *errs.Error listing all violations (the first one in Field and Message).
type checks struct {
	err error
	all *errs.Error // err, while it is the list of violations
}

func (c *checks) fail(field, format string, args ...any) {
	v := errs.Violation{Field: field, Description: fmt.Sprintf(format, args...)}
	switch {
	case c.err == nil:
		c.all = errs.InvalidAll([]errs.Violation{v})
		c.err = c.all
	case c.all != nil:
		c.all.Violations = append(c.all.Violations, v)
	}
}

// key requires a lowercase slug.
func (c *checks) key(field, v string) {
	switch {
	case v == "":
		c.fail(field, "is required")
	case !keyRE.MatchString(v):
		c.fail(field, "must be a lowercase slug matching ^[a-z0-9][a-z0-9_.-]{0,63}$")
	}
}

// optKey accepts "" or a slug.
func (c *checks) optKey(field, v string) {
	if v != "" {
		c.key(field, v)
	}
}

// text limits a free-text field to max characters; required refuses "".
func (c *checks) text(field, v string, maxLen int, required bool) {
	switch {
	case required && strings.TrimSpace(v) == "":
		c.fail(field, "is required")
	case !utf8.ValidString(v):
		c.fail(field, "must be valid UTF-8")
	case utf8.RuneCountInString(v) > maxLen:
		c.fail(field, "must be at most %d characters", maxLen)
	}
}

// revision requires the revision an update is based on.
func (c *checks) revision(field string, v int64) {
	if v <= 0 {
		c.fail(field, "is required: the revision the change is based on (> 0)")
	}
}

// page validates page_size and returns the store page.
func (c *checks) page(size int32, token string) store.Page {
	if size < 0 || size > maxPageSize {
		c.fail("page_size", "must be between 0 and %d", maxPageSize)
	}
	c.text("page_token", token, 1000, false)
	return store.Page{Size: int(size), Token: token}
}

// email requires an address.
func (c *checks) email(field, v string) {
	a, err := mail.ParseAddress(v)
	if v == "" {
		c.fail(field, "is required")
	} else if err != nil || a.Address != v || len(v) > 254 {
		c.fail(field, "must be an email address")
	}
}

// present requires a message field.
func (c *checks) present(field string, isNil bool) {
	if isNil {
		c.fail(field, "is required")
	}
}

func idx(field string, i int) string { return fmt.Sprintf("%s[%d]", field, i) }

// idempotencyKey returns the request's key, else the Idempotency-Key metadata.
func idempotencyKey(ctx context.Context, field string) (string, error) {
	k := field
	if k == "" {
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			if v := md.Get(IdempotencyHeader); len(v) > 0 {
				k = v[0]
			}
		}
	}
	if len(k) > maxIdemKey {
		return "", errs.Invalid("idempotency_key", "must be at most %d characters", maxIdemKey)
	}
	return k, nil
}

// meta builds the audit metadata of a write from the caller in ctx.
func meta(ctx context.Context, idem, comment, action string) store.WriteMeta {
	p := actor.PrincipalFrom(ctx)
	return store.WriteMeta{
		ActorID:        p.ID(),
		ActorName:      p.Name(),
		RequestID:      actor.RequestID(ctx),
		IdempotencyKey: idem,
		Comment:        comment,
		Action:         action,
	}
}
