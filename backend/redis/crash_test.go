package redis_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	intakeredis "github.com/intakehq/intake/backend/redis"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/intaketest"
)

// TestMain runs the test binary as a crash test's child process when
// INTAKE_REDIS_CHILD is set.
func TestMain(m *testing.M) {
	if os.Getenv("INTAKE_REDIS_CHILD") == "hold" {
		if err := holdChild(os.Getenv("INTAKE_REDIS_CHILD_ADDR"), os.Getenv("INTAKE_REDIS_PREFIX")); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

const childEvents = 200

// holdChild puts childEvents into a stream on a Redis queue (default
// heartbeat) whose handler never finishes, says STORED, and waits to be
// killed.
func holdChild(addr, prefix string) error {
	ctx := context.Background()
	c := goredis.NewClient(&goredis.Options{Addr: addr})
	q, err := intakeredis.NewQueue(ctx, c, intakeredis.WithQueuePrefix(prefix))
	if err != nil {
		return err
	}
	return intaketest.Hold(ctx, q, childEvents)
}

// startChild runs this test binary as a holding child on the queue at
// addr under prefix, and waits for it to say STORED.
func startChild(t *testing.T, addr, prefix string) *exec.Cmd {
	t.Helper()
	cmd, out := intaketest.Child(t, "INTAKE_REDIS_CHILD=hold", "INTAKE_REDIS_CHILD_ADDR="+addr, "INTAKE_REDIS_PREFIX="+prefix)
	if line := intaketest.FirstLine(t, out, 30*time.Second); line != "STORED" {
		t.Fatalf("child said %q", line)
	}
	return cmd
}

// queuePrefix is a queue prefix of the test's own, with a hash tag; its
// keys are deleted when the test ends.
func queuePrefix(t testing.TB, c *goredis.Client) string {
	t.Helper()
	p := "{" + testPrefix(t, c) + "}"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, p+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	return p
}

// A SIGKILLed holder's events are adopted by a live replica within 10 s
// with the defaults (the 5 s heartbeat), each handled once, and not
// before: a live holder keeps them.
func TestReplicaAdoptsAKilledHolder(t *testing.T) {
	c := testClient(t)
	prefix := queuePrefix(t, c)
	counts := intaketest.Counting(t, newQueue(t, c, prefix))

	cmd := startChild(t, addr(), prefix)
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

// redisServer starts a redis-server of the test's own on a free port with
// the append-only file synced on every write, in dir; the returned
// function restarts it on the same dir and port after a SIGKILL.
func redisServer(t *testing.T, dir string) (addr string, kill, start func()) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "redis-server not found: install it (apt-get install redis-server) to run the Redis restart test"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	addr = fmt.Sprintf("127.0.0.1:%d", port)
	var cmd *exec.Cmd
	start = func() {
		cmd = exec.Command(bin, "--bind", "127.0.0.1", "--port", fmt.Sprint(port), "--dir", dir,
			"--appendonly", "yes", "--appendfsync", "always", "--save", "")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		c := goredis.NewClient(&goredis.Options{Addr: addr})
		defer c.Close()
		for i := 0; ; i++ {
			if c.Ping(context.Background()).Err() == nil {
				return
			}
			if i > 500 {
				t.Fatal("redis-server did not answer in 5 s")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	kill = func() {
		_ = cmd.Process.Kill() // SIGKILL: no shutdown, no final save
		_ = cmd.Wait()
	}
	start()
	t.Cleanup(kill)
	return addr, kill, start
}

// Nothing acknowledged is lost across a SIGKILL of Redis itself, with AOF
// and appendfsync always: the holder is killed too, Redis is killed and
// restarted on its files, and a new holder gets every event, once.
func TestNothingAckedLostAcrossRedisRestart(t *testing.T) {
	testClient(t) // the skip message when no Redis is set up at all
	addr, kill, start := redisServer(t, t.TempDir())
	const prefix = "{restart}:"

	cmd := startChild(t, addr, prefix) // 200 events acknowledged
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	kill()
	start()

	c := goredis.NewClient(&goredis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	q := newQueue(t, c, prefix)
	recs, err := q.List(context.Background(), dedupe.Filter{State: dedupe.Queued, Limit: 1000})
	if err != nil {
		t.Fatal(err)
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
	took := counts.WaitFor(t, childEvents, time.Now(), 20*time.Second)
	t.Logf("all %d acknowledged events handled %v after Redis came back", childEvents, took.Round(time.Millisecond))
	counts.CheckOnce(t)
}
