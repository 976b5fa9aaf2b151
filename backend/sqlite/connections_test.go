package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/intakehq/intake/fleet"
	"github.com/intakehq/intake/fleet/fleettest"
)

func TestFleetConformance(t *testing.T) {
	fleettest.Run(t, func(t *testing.T) fleet.Store {
		return open(t, filepath.Join(t.TempDir(), "fleet.db")).Connections()
	})
}
