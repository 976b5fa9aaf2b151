package nats_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	intakenats "github.com/intakehq/intake/backend/nats"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/intaketest"
	"github.com/intakehq/intake/internal/testenv"
)

// TestMain runs the test binary as a crash test's child process when
// INTAKE_NATS_CHILD is set.
func TestMain(m *testing.M) {
	if os.Getenv("INTAKE_NATS_CHILD") == "replica" {
		if err := replicaChild(os.Getenv("INTAKE_NATS_CHILD_URL"), os.Getenv("INTAKE_NATS_CHILD_NAME"), os.Getenv("INTAKE_NATS_CHILD_LOG")); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv("INTAKE_NATS_CHILD") == "hold" {
		if err := holdChild(os.Getenv("INTAKE_NATS_CHILD_URL"), os.Getenv("INTAKE_NATS_CHILD_NAME")); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const childEvents = 200

// holdChild puts childEvents into a stream on an R3 queue (default
// heartbeat) whose handler never finishes, says STORED, and waits to be
// killed.
func holdChild(url, name string) error {
	ctx := context.Background()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1))
	if err != nil {
		return err
	}
	q, err := intakenats.NewQueue(ctx, nc, intakenats.WithName(name), intakenats.WithReplicas(3))
	if err != nil {
		return err
	}
	return intaketest.Hold(ctx, q, childEvents)
}

// startChild runs this test binary as a holding child on the queue name
// at url, and waits for it to say STORED.
func startChild(t *testing.T, url, name string) *exec.Cmd {
	t.Helper()
	cmd, out := intaketest.Child(t, "INTAKE_NATS_CHILD=hold", "INTAKE_NATS_CHILD_URL="+url, "INTAKE_NATS_CHILD_NAME="+name)
	if line := intaketest.FirstLine(t, out, 60*time.Second); line != "STORED" {
		t.Fatalf("child said %q", line)
	}
	return cmd
}

// A SIGKILLed holder's events are adopted by a live replica within 10 s
// with the defaults (the 5 s heartbeat), each handled once, and not
// before: a live holder keeps them. On the three-node cluster, R3.
func TestReplicaAdoptsAKilledHolder(t *testing.T) {
	testenv.SkipUnlessLong(t)
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	c := newCluster(t)
	nc := connect(t, c.URLs(), "the test cluster")
	name := testName(t, nc)
	q := openQueue(t, nc, intakenats.WithName(name), intakenats.WithReplicas(3))
	t.Cleanup(func() { q.Close() })
	counts := intaketest.Counting(t, q)

	cmd := startChild(t, c.URLs(), name)
	time.Sleep(2 * time.Second) // the replica's adopter runs every second meanwhile
	if n := counts.Len(); n != 0 {
		t.Fatalf("%d events taken from a live holder", n)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no Close, the heartbeat just stops
		t.Fatal(err)
	}
	took := counts.WaitFor(t, childEvents, time.Now(), 20*time.Second)
	t.Logf("all %d events of the killed holder handled by the replica %v after the kill", childEvents, took.Round(time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("adoption took %v, want at most 10 s", took)
	}
	counts.CheckOnce(t)
}

// Nothing acknowledged is lost when every server crashes at once: the
// holder and all three nodes are SIGKILLed, the nodes restarted on their
// files, and a new holder gets every event, byte-exact, once. A process
// kill loses what a server had not yet written to the kernel, not what
// the kernel had not yet written to disk: the nodes run with
// sync_interval always, as the README asks, but what that setting adds
// (surviving a crash of the host) is beyond a test on one machine.
func TestNothingAckedLostWhenEveryServerCrashes(t *testing.T) {
	testenv.SkipUnlessLong(t)
	if testing.Short() {
		t.Skip("starts a three-node cluster")
	}
	c := newCluster(t)
	name := "CRASH"
	cmd := startChild(t, c.URLs(), name) // 200 events acknowledged
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	crashAll(t, c)

	nc := connect(t, c.URLs(), "the test cluster")
	q := openQueue(t, nc, intakenats.WithName(name), intakenats.WithReplicas(3)) // the streams' leaders are elected again
	t.Cleanup(func() { q.Close() })
	var recs []dedupe.Record
	for deadline := time.Now().Add(30 * time.Second); ; {
		var err error
		recs, err = q.List(context.Background(), dedupe.Filter{State: dedupe.Queued, Limit: 1000})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(recs) != childEvents {
		t.Fatalf("%d events queued after the restart, want %d", len(recs), childEvents)
	}
	for i, r := range recs {
		want := intaketest.HeldEvent(i)
		if r.Event.ID != want.ID || string(r.Event.Payload) != string(want.Payload) {
			t.Fatalf("record %d: %q %q, want byte-exact %s %q", i, r.Event.ID, r.Event.Payload, want.ID, want.Payload)
		}
	}
	counts := intaketest.Counting(t, q)
	took := counts.WaitFor(t, childEvents, time.Now(), 30*time.Second)
	t.Logf("all %d acknowledged events handled %v after the cluster came back", childEvents, took.Round(time.Millisecond))
	counts.CheckOnce(t)
}
