package sdk

// ReportError records that the application saw an error while serving variant
// of flagKey (e.g. the new checkout failed for a user served "on"). The errors
// travel with the evaluation counts (every UsageInterval) to the control plane,
// where a release plan's sdk_errors guardrail compares them with the variant's
// evaluations and rolls the flag back when they breach its threshold
// (docs/release-safety.md, "Guardrails on SDK-reported errors").
//
// It costs two map lookups and an atomic add. It returns false (and records
// nothing) when usage reporting is off, no manifest is held yet, or the held
// manifest has no such flag and variant; variant "" is the flag's failed
// evaluations, which the SDK already counts itself.
func (c *Client) ReportError(flagKey, variant string) bool {
	s := c.state.Load()
	if s == nil || c.usage == nil || variant == "" {
		return false
	}
	return c.usage.fail(s.counters, flagKey, variant)
}
