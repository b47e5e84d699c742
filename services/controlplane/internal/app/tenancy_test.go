package app_test

import (
	"context"
	"sort"
	"strings"
	"testing"

	adminv1 "github.com/flagforge/flagforge/pkg/gen/flagforge/admin/v1"
	"github.com/flagforge/flagforge/services/controlplane/internal/authz"
	"github.com/flagforge/flagforge/services/controlplane/internal/bootstrap"
	"github.com/flagforge/flagforge/services/controlplane/internal/ratelimit"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// targets are acme's resources as request fields name them.
var targets = map[protoreflect.Name]string{
	"org": "acme", "project": "web", "environment": "production", "flag": "new-ui", "segment": "beta-users",
	"reason": "cross-tenant", "name": "x", "revision": "1",
}

// acmeRequest fills every field naming a resource with acme's, nested messages
// included, so the request would be valid for a member of acme.
func acmeRequest(m protoreflect.Message, memberID, tokenID, keyID, auditID string) {
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case fd.Kind() == protoreflect.StringKind && !fd.IsList():
			v, ok := targets[fd.Name()]
			switch fd.Name() {
			case "member_id":
				v, ok = memberID, true
			case "token_id":
				v, ok = tokenID, true
			case "key_id":
				v, ok = keyID, true
			case "id":
				v, ok = auditID, true
			case "key":
				v, ok = "cross", true
			}
			if ok {
				m.Set(fd, protoreflect.ValueOfString(v))
			}
		case fd.Kind() == protoreflect.Int64Kind && fd.Name() == "revision":
			m.Set(fd, protoreflect.ValueOfInt64(1))
		case fd.Kind() == protoreflect.MessageKind && !fd.IsList() && !fd.IsMap() &&
			strings.HasPrefix(string(fd.Message().FullName()), "flagforge."):
			acmeRequest(m.Mutable(fd).Message(), memberID, tokenID, keyID, auditID)
		}
	}
}

// TestCrossTenant: the owner of organization globex calls every declared method
// against acme's resources; each is refused with NOT_FOUND (or PERMISSION_DENIED)
// and acme is unchanged.
func TestCrossTenant(t *testing.T) {
	t.Parallel()
	eachBackend(t, ratelimit.Config{}, func(t *testing.T, c *cp) {
		c.project()
		res, err := bootstrap.Run(context.Background(), c.st, "globex", "root@globex.test", "")
		if err != nil {
			t.Fatal(err)
		}
		globex := res.Secret
		c.call("POST", "/v1/orgs/acme/projects/web/environments/production/segments", c.owner, map[string]any{"segment": map[string]any{"key": "beta-users"}}).want(t, 200)
		key := c.call("POST", "/v1/orgs/acme/projects/web/environments/production/sdk-keys", c.owner, map[string]any{"name": "k", "kind": "SDK_KEY_KIND_SERVER"}).want(t, 200)
		tok := c.call("POST", "/v1/orgs/acme/api-tokens", c.owner, map[string]any{"name": "t"}).want(t, 200)
		members := c.call("GET", "/v1/orgs/acme/members", c.owner, nil).want(t, 200)
		audit := c.call("GET", "/v1/orgs/acme/audit?pageSize=1", c.owner, nil).want(t, 200)
		memberID := members.get("members", 0, "id").(string)
		before := c.call("GET", "/v1/orgs/acme/audit?pageSize=1000", c.owner, nil).want(t, 200)

		methods := make([]string, 0, len(authz.Table))
		for m := range authz.Table {
			methods = append(methods, m)
		}
		sort.Strings(methods)
		for _, method := range methods {
			rule := authz.Table[method]
			parts := strings.Split(strings.TrimPrefix(method, "/"), "/")
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(parts[0]))
			if err != nil {
				t.Fatal(err)
			}
			md := d.(protoreflect.ServiceDescriptor).Methods().ByName(protoreflect.Name(parts[1]))
			in, err := protoregistry.GlobalTypes.FindMessageByName(md.Input().FullName())
			if err != nil {
				t.Fatal(err)
			}
			out, err := protoregistry.GlobalTypes.FindMessageByName(md.Output().FullName())
			if err != nil {
				t.Fatal(err)
			}
			req := in.New()
			acmeRequest(req, memberID, tok.get("token", "id").(string), key.get("key", "id").(string), audit.get("entries", 0, "id").(string))
			resp := out.New().Interface()
			err = c.conn.Invoke(as(globex), method, req.Interface(), resp)
			code := status.Code(err)
			if rule.Level == authz.LevelCaller {
				// No organization in the request: the caller's own is used.
				if method == adminv1.OrganizationService_ListOrganizations_FullMethodName {
					if err != nil || strings.Contains(protoString(resp), `"acme"`) {
						t.Errorf("%s: %v, %v", method, err, resp)
					}
				}
				continue
			}
			if code != codes.NotFound && code != codes.PermissionDenied {
				t.Errorf("%s: code %s (%v), want NOT_FOUND or PERMISSION_DENIED", method, code, err)
			}
		}
		// REST too.
		c.call("GET", "/v1/orgs/acme/projects/web/flags", globex, nil).want(t, 404)
		c.call("PUT", "/v1/orgs/acme/projects/web/environments/production/flags/new-ui", globex,
			map[string]any{"config": map[string]any{"on": true}, "revision": 1}).want(t, 404)
		after := c.call("GET", "/v1/orgs/acme/audit?pageSize=1000", c.owner, nil).want(t, 200)
		if len(after.body["entries"].([]any)) != len(before.body["entries"].([]any)) {
			t.Fatal("a cross-tenant call wrote to acme")
		}
	})
}

func protoString(m proto.Message) string {
	b, _ := protojson.Marshal(m)
	return string(b)
}
