package sqlite_test

import (
	"testing"

	"github.com/flagforge/flagforge/services/controlplane/internal/store/storetest"
)

func TestGovernanceConformance(t *testing.T) {
	storetest.RunGovernance(t, open)
}
