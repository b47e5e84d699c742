package postgres_test

import (
	"testing"

	"github.com/flagforge/flagforge/services/controlplane/internal/store"
	"github.com/flagforge/flagforge/services/controlplane/internal/store/storetest"
	"github.com/flagforge/flagforge/services/controlplane/internal/testpg"
)

// TestHistoryConformance runs the history suite as the application's login role
// (so the grants of migration 00008 are proven sufficient).
func TestHistoryConformance(t *testing.T) {
	storetest.RunHistory(t, func(t *testing.T) store.Store {
		return open(t, testpg.AppURL(t, testpg.New(t)))
	})
}
