package nats_test

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/intakehq/intake/backend/nats/natstest"
)

// newCluster starts a three-node cluster of the test's own (nats-server
// natstest.Version, sync_interval always) and kills it when the test
// ends. Without a nats-server it skips, or fails under CI=true.
func newCluster(t testing.TB) *natstest.Cluster { return newNodes(t, 3) }

// newNodes starts n nodes of the test's own, as newCluster does.
func newNodes(t testing.TB, n int) *natstest.Cluster {
	t.Helper()
	bin, err := natstest.Binary()
	if err != nil {
		skipOrFail(t, err.Error()+"; set INTAKE_NATS_SERVER to a nats-server binary (2.11 or later)")
	}
	c, err := natstest.Start(bin, t.TempDir(), n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// ownServer starts a single server of the test's own and connects to it,
// reconnecting without end (the tests kill and restart it).
func ownServer(t testing.TB) (*natstest.Cluster, *nats.Conn) {
	t.Helper()
	c := newNodes(t, 1)
	nc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return c, nc
}

// crashAll SIGKILLs every node of c, starts them again on their files,
// and waits until JetStream answers through each.
func crashAll(t testing.TB, c *natstest.Cluster) {
	t.Helper()
	for i := range c.Nodes {
		c.Kill(i)
	}
	for i := range c.Nodes {
		if err := c.StartNode(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.WaitReady(30 * time.Second); err != nil {
		t.Fatal(err)
	}
}
