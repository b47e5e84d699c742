package sqlstore

import (
	"encoding/json"

	"google.golang.org/protobuf/proto"

	"github.com/flagforge/flagforge/services/controlplane/internal/store"
)

var _ store.Governance = (*Store)(nil)

// jsonTree renders a message as a generic JSON tree (for diffs).
func jsonTree(m proto.Message) any {
	s, err := canonicalJSON(m)
	if err != nil {
		return nil
	}
	var v any
	if json.Unmarshal([]byte(s), &v) != nil {
		return nil
	}
	return v
}
