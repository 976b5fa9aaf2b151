package fleet_test

import (
	"testing"

	"github.com/intakehq/intake/fleet"
	"github.com/intakehq/intake/fleet/fleettest"
)

func TestMemoryConformance(t *testing.T) {
	fleettest.Run(t, func(*testing.T) fleet.Store { return &fleet.Memory{} })
}
