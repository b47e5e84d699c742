package postgres_test

import (
	"testing"

	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/storetest"
	"github.com/flagforge/flagforge/services/controlplane/internal/testpg"
)

// TestGovernanceConformance runs the governance suite as the application's login
// role (so the grants of migration 00003 are proven sufficient).
func TestGovernanceConformance(t *testing.T) {
	storetest.RunGovernance(t, func(t *testing.T) store.Store {
		return open(t, testpg.AppURL(t, testpg.New(t)))
	})
}
