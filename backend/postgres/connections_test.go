package postgres_test

import (
	"testing"

	"github.com/intakehq/intake/fleet"
	"github.com/intakehq/intake/fleet/fleettest"
)

func TestFleetConformance(t *testing.T) {
	pool := testPool(t)
	fleettest.Run(t, func(t *testing.T) fleet.Store {
		return newBackend(t, pool, testPrefix(t, pool)).Connections()
	})
}
