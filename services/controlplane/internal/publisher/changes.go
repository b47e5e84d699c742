package publisher

import (
	"slices"
	"strings"

	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

// changes is what a batch of outbox rows says changed in one environment: the
// flags and segments they name, or full when a row cannot be narrowed down (the
// environment's whole content is then read again and compared).
type changes struct {
	flags, segments map[string]bool
	full            bool
	// force publishes a version even when the content is unchanged (recovery).
	force bool
}

func (c *changes) flagKeys() []string    { return sortedKeys(c.flags) }
func (c *changes) segmentKeys() []string { return sortedKeys(c.segments) }

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// add records what e changed.
func (c *changes) add(e store.OutboxEvent) {
	switch e.Kind {
	case store.RecoveryAction:
		c.full, c.force = true, true
		return
	case "context_policy.update":
		return // private attributes are read again for every version
	}
	kind, key := resourceOf(e.Resource)
	switch kind {
	case "flag":
		if c.flags == nil {
			c.flags = map[string]bool{}
		}
		c.flags[key] = true
	case "segment":
		if c.segments == nil {
			c.segments = map[string]bool{}
		}
		c.segments[key] = true
	case "sdk_key", "none":
		// SDK keys and private attributes are read again for every version.
	default:
		c.full = true
	}
}

// resourceOf narrows an outbox row's resource (the audit resource path, e.g.
// "projects/web/environments/production/flags/new-ui") to what a manifest holds:
//   - "flag" and its key: a flag's definition (projects/P/flags/F), its
//     configuration in an environment (.../environments/E/flags/F) or anything
//     under it (a release plan);
//   - "segment" and its key;
//   - "sdk_key": an SDK key (the publisher reads an environment's keys again for
//     every version anyway);
//   - "none": bookkeeping that never changes a manifest by itself (a change
//     request or a schedule: the write it applies records its own row);
//   - "" otherwise (environment settings, a rollback, a project, anything new):
//     the environment is read whole.
func resourceOf(resource string) (kind, key string) {
	parts := strings.Split(resource, "/")
	if len(parts) < 2 || parts[0] != "projects" {
		return "", ""
	}
	rest := parts[2:]
	if len(rest) >= 2 && rest[0] == "environments" {
		rest = rest[2:]
	}
	if len(rest) < 2 || rest[1] == "" {
		return "", ""
	}
	switch rest[0] {
	case "flags":
		return "flag", rest[1]
	case "segments":
		if len(rest) == 2 {
			return "segment", rest[1]
		}
	case "sdk_keys":
		return "sdk_key", rest[1]
	case "change-requests", "scheduled-changes":
		return "none", ""
	}
	return "", ""
}

// ignored reports rows that concern no environment's manifest at all (members,
// API tokens, webhooks): they are marked published without reading anything.
func ignored(e store.OutboxEvent) bool {
	switch {
	case strings.HasPrefix(e.Resource, "members/"), strings.HasPrefix(e.Resource, "api_tokens/"):
		return true
	case strings.HasPrefix(e.Kind, "webhook."):
		return true
	}
	return false
}
