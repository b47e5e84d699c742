package sqlite_test

import (
	"testing"

	"github.com/flagforge/flagforge/services/controlplane/internal/store/storetest"
)

func TestHistoryConformance(t *testing.T) {
	storetest.RunHistory(t, open)
}
