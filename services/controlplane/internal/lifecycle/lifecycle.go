// Package lifecycle computes a flag's lifecycle status in one environment (new,
// active, inactive, stale, archived) from its definition, its configuration there
// and when evaluators last reported it. Time is passed in, so the thresholds are
// testable without waiting.
package lifecycle

import (
	"errors"
	"time"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	manifestv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/manifest/v1"
)

// Config holds the thresholds.
type Config struct {
	// ActiveWindow: a flag evaluated within it is active (default 7 days).
	ActiveWindow time.Duration `env:"LIFECYCLE_ACTIVE_WINDOW, default=168h"`
	// StaleAfter: a flag serving one variant to everyone for this long since its
	// last configuration change is stale (default 30 days).
	StaleAfter time.Duration `env:"LIFECYCLE_STALE_AFTER, default=720h"`
}

// Defaults returns the documented defaults.
func Defaults() Config {
	return Config{ActiveWindow: 7 * 24 * time.Hour, StaleAfter: 30 * 24 * time.Hour}
}

// Validate checks the thresholds.
func (c Config) Validate() error {
	if c.ActiveWindow <= 0 || c.StaleAfter <= 0 {
		return errors.New("lifecycle: active window and stale-after must be > 0")
	}
	return nil
}

// SingleVariant reports whether c serves one variant to everyone: off, or on
// without targets, rules or a percentage rollout.
func SingleVariant(c *manifestv1.FlagConfig) bool {
	if !c.GetOn() {
		return true
	}
	if len(c.GetTargets()) > 0 || len(c.GetRules()) > 0 {
		return false
	}
	_, rollout := c.GetDefaultServe().GetKind().(*manifestv1.Serve_Rollout)
	return !rollout
}

// Status is the flag's status in the environment of fc at now. Precedence:
// archived, then stale (temporary and past its expiry, or serving one variant to
// everyone for StaleAfter since the last configuration change), then active
// (evaluated within ActiveWindow), then new (off and never evaluated), else
// inactive (never or no longer evaluated).
func (c Config) Status(f *adminv1.Flag, fc *adminv1.FlagEnvironmentConfig, now time.Time) adminv1.FlagStatus {
	if c.ActiveWindow <= 0 || c.StaleAfter <= 0 {
		c = Defaults()
	}
	switch {
	case f.GetArchived():
		return adminv1.FlagStatus_FLAG_STATUS_ARCHIVED
	case f.GetTemporary() && f.GetExpiresAt() != nil && !now.Before(f.GetExpiresAt().AsTime()):
		return adminv1.FlagStatus_FLAG_STATUS_STALE
	case SingleVariant(fc.GetConfig()) && fc.GetUpdateTime() != nil && now.Sub(fc.GetUpdateTime().AsTime()) >= c.StaleAfter:
		return adminv1.FlagStatus_FLAG_STATUS_STALE
	}
	evaluated := fc.GetLastEvaluated() != nil && fc.GetLastEvaluated().AsTime().Unix() > 0
	switch {
	case evaluated && now.Sub(fc.GetLastEvaluated().AsTime()) < c.ActiveWindow:
		return adminv1.FlagStatus_FLAG_STATUS_ACTIVE
	case !evaluated && !fc.GetConfig().GetOn():
		return adminv1.FlagStatus_FLAG_STATUS_NEW
	default:
		return adminv1.FlagStatus_FLAG_STATUS_INACTIVE
	}
}
