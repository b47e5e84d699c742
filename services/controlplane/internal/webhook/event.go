package webhook

import (
	"encoding/json"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
)

// Event is the JSON body of a delivery.
type Event struct {
	// ID is the audit entry's id: stable across retries, for deduplication.
	ID           string          `json:"id"`
	Type         string          `json:"type"`
	Time         string          `json:"time"`
	Org          string          `json:"org"`
	Project      string          `json:"project"`
	Environment  string          `json:"environment,omitempty"`
	Resource     string          `json:"resource"`
	ResourceType string          `json:"resource_type"`
	Action       string          `json:"action"`
	Actor        Actor           `json:"actor"`
	Before       json.RawMessage `json:"before"`
	After        json.RawMessage `json:"after"`
	// Emergency marks emergency off and kill switches (taken without approval).
	Emergency bool `json:"emergency"`
	// Automatic marks what the control plane did by itself: a release plan
	// paused or rolled back by its guardrails.
	Automatic bool   `json:"automatic"`
	Reason    string `json:"reason,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	Sequence  int64  `json:"sequence"`
}

// Actor is who made the change.
type Actor struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

var verbs = map[string]string{
	"create": "created", "update": "updated", "delete": "deleted", "archive": "archived",
	"restore": "restored", "approve": "approved", "reject": "rejected", "apply": "applied",
	"withdraw": "withdrawn", "comment": "commented", "cancel": "cancelled", "run": "applied",
	"fail": "failed", "enable": "enabled", "disable": "disabled", "kill": "killed",
	"revoke": "revoked", "role_grant": "role_granted", "role_revoke": "role_revoked",
	"start": "started", "pause": "paused", "resume": "resumed", "rollback": "rolled_back",
	"advance": "advanced", "complete": "completed", "auto_pause": "paused_automatically",
	"auto_rollback": "rolled_back_automatically",
}

// Membership reports whether an audit entry's resource is about who may act in
// the organization (members, their role bindings, API tokens). Such changes are
// announced to every webhook of the organization, whatever its project.
func Membership(resource string) bool {
	return strings.HasPrefix(resource, "members/") || strings.HasPrefix(resource, "api_tokens/")
}

// EventType names the change type of an audit action: "flag_config.update" is
// "flag.config.updated", "flag_config.emergency_off" is "flag.emergency_off",
// "flag.kill" is "flag.killed", "schedule.run" is "schedule.applied"; otherwise the
// noun and the verb's past tense ("segment.updated", "change_request.approved").
func EventType(action string) string {
	switch action {
	case "flag_config.emergency_off":
		return "flag.emergency_off"
	case "flag_config.update":
		return "flag.config.updated"
	}
	noun, verb, ok := strings.Cut(action, ".")
	if !ok {
		return action
	}
	if v, ok := verbs[verb]; ok {
		verb = v
	}
	return noun + "." + verb
}

// automatic reports the actions the control plane took by itself.
func automatic(action string) bool {
	return action == "release_plan.auto_rollback" || action == "release_plan.auto_pause"
}

// emergency reports the actions taken without approval.
func emergency(action string) bool {
	return action == "flag_config.emergency_off" || action == "flag.kill"
}

// parts splits "projects/<p>/environments/<e>/..." into project and environment.
func parts(resource string) (project, env string) {
	seg := strings.Split(resource, "/")
	if len(seg) >= 2 && seg[0] == "projects" {
		project = seg[1]
	}
	if len(seg) >= 4 && seg[2] == "environments" {
		env = seg[3]
	}
	return project, env
}

// OrderKey groups the deliveries that must be sent in order: every change of one
// flag (in any environment) shares "flag:<key>"; other resources are their own.
func OrderKey(resource string) string {
	seg := strings.Split(resource, "/")
	for i := 0; i+1 < len(seg); i++ {
		if seg[i] == "flags" {
			return "flag:" + seg[i+1]
		}
	}
	return resource
}

func raw(v *structpb.Value) json.RawMessage {
	if v == nil {
		return json.RawMessage("null")
	}
	b, err := protojson.Marshal(v)
	if err != nil {
		return json.RawMessage("null")
	}
	return b
}

// Render turns an audit entry into a delivery's event type, order key and body;
// ok is false for entries outside any project (nothing to announce), except
// membership changes (Membership), announced with an empty project.
func Render(e *adminv1.AuditEntry, org string) (eventType, orderKey string, body []byte, ok bool) {
	project, env := parts(e.GetResource())
	if project == "" && !Membership(e.GetResource()) {
		return "", "", nil, false
	}
	ev := Event{
		ID: e.GetId(), Type: EventType(e.GetAction()), Time: e.GetTime().AsTime().UTC().Format("2006-01-02T15:04:05.999999Z07:00"),
		Org: org, Project: project, Environment: env, Resource: e.GetResource(), ResourceType: e.GetResourceType(),
		Action: e.GetAction(), Actor: Actor{ID: e.GetActorId(), Name: e.GetActorName()},
		Before: raw(e.GetBefore()), After: raw(e.GetAfter()), Emergency: emergency(e.GetAction()), Automatic: automatic(e.GetAction()),
		Reason: e.GetComment(), RequestID: e.GetRequestId(), Sequence: e.GetSequence(),
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return "", "", nil, false
	}
	return ev.Type, OrderKey(e.GetResource()), b, true
}

// TestEventType is the type of the deliveries SendTestWebhook queues.
const TestEventType = "webhook.test"

// TestEvent is the body of a test delivery: an Event of type "webhook.test"
// naming the project and who asked, with no change (before and after null).
func TestEvent(id, org, project string, by Actor, now time.Time) ([]byte, error) {
	return json.Marshal(Event{
		ID: id, Type: TestEventType, Time: now.UTC().Format("2006-01-02T15:04:05.999999Z07:00"), Org: org, Project: project,
		Resource: "projects/" + project + "/webhooks", ResourceType: "webhook", Action: TestEventType, Actor: by,
		Before: json.RawMessage("null"), After: json.RawMessage("null"), Reason: "test delivery",
	})
}
