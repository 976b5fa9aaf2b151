package nats_test

import (
	"testing"

	"github.com/intakehq/intake/backend/nats/natstest"
)

// newCluster starts a three-node cluster of the test's own (nats-server
// natstest.Version, sync_interval always) and kills it when the test
// ends. Without a nats-server it skips, or fails under CI=true.
func newCluster(t testing.TB) *natstest.Cluster {
	t.Helper()
	bin, err := natstest.Binary()
	if err != nil {
		skipOrFail(t, err.Error()+"; set INTAKE_NATS_SERVER to a nats-server binary (2.11 or later)")
	}
	c, err := natstest.Start(bin, t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}
