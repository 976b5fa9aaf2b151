package postgres_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/postgres"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/intaketest"
)

// TestMain runs the test binary as the crash test's child process when
// INTAKE_PG_CHILD is set.
func TestMain(m *testing.M) {
	if os.Getenv("INTAKE_PG_CHILD") == "hold" {
		if err := holdChild(os.Getenv("INTAKE_PG_PREFIX")); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv("INTAKE_PG_CHILD") == "effects" {
		if err := effectsChild(os.Getenv("INTAKE_PG_PREFIX")); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv("INTAKE_PG_CHILD") == "order" {
		if err := orderChild(os.Getenv("INTAKE_PG_PREFIX")); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if os.Getenv("INTAKE_PG_CHILD") == "loop" {
		b, err := postgres.Open(context.Background(), dsn(), postgres.WithPrefix(os.Getenv("INTAKE_PG_PREFIX")))
		if err == nil {
			err = intaketest.CrashLoopChild(b)
		}
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	if os.Getenv("INTAKE_PG_CHILD") == "1" {
		if err := crashChild(os.Getenv("INTAKE_PG_PREFIX")); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// oddEvents are events a provider or a custom fetch may well produce: no
// payload, an empty one, NUL and invalid UTF-8 in the id, type and meta,
// an id longer than Postgres's btree limit, a payload that is not JSON.
func oddEvents() []event.Event {
	long := strings.Repeat("0123456789abcdef", 256) // 4 KiB
	at := time.Unix(1_700_000_000, 123_456_789)
	return []event.Event{
		{ID: "nil-payload", Type: "t"},
		{ID: "empty-payload", Payload: []byte{}},
		{ID: "nul-\x00-id", Type: "type-\x00", Payload: []byte(`{}`)},
		{ID: "bad-utf8-\xff\xfe", Type: "\xc3\x28", Payload: []byte("\x00\xff not json")},
		{ID: long, Payload: []byte(long)},
		{ID: "meta", Meta: map[string]string{"nul": "a\x00b", "bad\xff": "\xed\xa0\x80", "": ""}, Time: at},
	}
}

// crashChild puts oddEvents into a stream on Postgres whose handler never
// finishes, says so on stdout, and waits to be killed.
func crashChild(prefix string) error {
	ctx := context.Background()
	b, err := postgres.Open(ctx, dsn(), postgres.WithPrefix(prefix))
	if err != nil {
		return err
	}
	s := intake.New(intake.WithQueue(b), intake.WithClaimLease(time.Second), intake.WithLogger(quiet))
	s.Handle(func(ctx context.Context, e event.Event) error {
		<-ctx.Done() // never done before the kill
		return ctx.Err()
	}, intake.WithAckTimeout(time.Hour))
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = s.Run(runCtx) }()
	for _, e := range oddEvents() {
		e.Source, e.Via = "odd", event.Poll
		if err := intaketest.Put(ctx, s, e); err != nil {
			return fmt.Errorf("put %q: %w", e.ID, err)
		}
	}
	fmt.Println("STORED")
	select {}
}

// TestCrashKeepsOddEventsByteExact puts events with no payload and with
// bytes Postgres text and jsonb refuse, SIGKILLs the process that holds
// them, and checks that a new stream adopts every one of them byte-exact.
func TestCrashKeepsOddEventsByteExact(t *testing.T) {
	pool := testPool(t)
	prefix := testPrefix(t, pool)
	newBackend(t, pool, prefix) // create the tables before the child does

	cmd := startChild(t, "1", prefix, 20*time.Second)
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	_ = cmd.Wait()

	want := map[string]event.Event{}
	for _, e := range oddEvents() {
		e.Source, e.Via = "odd", event.Poll
		want[e.ID] = e
	}
	s := intake.New(intake.WithQueue(newBackend(t, pool, prefix)), intake.WithClaimLease(time.Second), intake.WithLogger(quiet))
	var mu sync.Mutex
	got := map[string][]event.Event{}
	all := make(chan struct{})
	s.Handle(func(ctx context.Context, e event.Event) error {
		mu.Lock()
		defer mu.Unlock()
		got[e.ID] = append(got[e.ID], e)
		if len(got) == len(want) {
			select {
			case <-all:
			default:
				close(all)
			}
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	select {
	case <-all:
	case <-time.After(15 * time.Second):
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, w := range want {
		es := got[id]
		if len(es) != 1 {
			t.Errorf("event %.40q delivered %d times, want once", id, len(es))
			continue
		}
		e := es[0]
		if !e.Received.IsZero() {
			e.Received = w.Received // set by the child's Put
		}
		if !e.Time.Equal(w.Time) {
			t.Errorf("event %.40q: time %v, want %v", id, e.Time, w.Time)
		}
		e.Time = w.Time
		if !reflect.DeepEqual(e, w) {
			t.Errorf("event %.40q adopted as\n%#v\nwant\n%#v", id, e, w)
		}
	}
}

// TestDrainKeepsClaims: a replica shutting down gracefully keeps renewing
// the claims of what it is still handling, so that another replica does
// not adopt it and handle it a second time (a rolling deploy).
func TestDrainKeepsClaims(t *testing.T) {
	pool := testPool(t)
	prefix := testPrefix(t, pool)
	const lease = 300 * time.Millisecond
	var mu sync.Mutex
	handled := map[string]int{}
	record := func(who string) {
		mu.Lock()
		handled[who]++
		mu.Unlock()
	}

	a := intake.New(intake.WithQueue(newBackend(t, pool, prefix)), intake.WithClaimLease(lease),
		intake.WithDrainTimeout(10*time.Second), intake.WithLogger(quiet))
	started, finish := make(chan struct{}), make(chan struct{})
	a.Handle(func(ctx context.Context, e event.Event) error {
		close(started)
		<-finish // five leases of handling, most of them while draining
		record("a")
		return nil
	}, intake.WithAckTimeout(time.Minute))
	b := intake.New(intake.WithQueue(newBackend(t, pool, prefix)), intake.WithClaimLease(lease), intake.WithLogger(quiet))
	b.Handle(func(ctx context.Context, e event.Event) error {
		record("b")
		return nil
	})
	actx, stopA := context.WithCancel(context.Background())
	bctx, stopB := context.WithCancel(context.Background())
	adone, bdone := make(chan error, 1), make(chan error, 1)
	go func() { adone <- a.Run(actx) }()
	go func() { bdone <- b.Run(bctx) }()
	e := event.Event{Source: "deploy", ID: "slow", Payload: []byte(`{}`)}
	if err := intaketest.Put(context.Background(), a, e); err != nil {
		t.Fatal(err)
	}
	<-started
	time.Sleep(lease / 2)
	stopA() // a drains from here
	time.Sleep(5 * lease)
	close(finish)
	if err := <-adone; err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * lease) // time enough for b to adopt anything left
	stopB()
	if err := <-bdone; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if handled["a"] != 1 || handled["b"] != 0 {
		t.Fatalf("handled by a %d times, by b %d times; want a once and b never", handled["a"], handled["b"])
	}
}

// holdChild runs a stream with the default options that puts 100 events
// its handler never finishes, says STORED, and waits to be killed.
func holdChild(prefix string) error {
	ctx := context.Background()
	b, err := postgres.Open(ctx, dsn(), postgres.WithPrefix(prefix))
	if err != nil {
		return err
	}
	s := intake.New(intake.WithQueue(b), intake.WithLogger(quiet))
	s.Handle(func(ctx context.Context, e event.Event) error { select {} }, intake.WithWorkers(8))
	go func() { _ = s.Run(ctx) }()
	for i := range 100 {
		if err := intaketest.Put(ctx, s, event.Event{Source: "api", ID: fmt.Sprintf("e-%03d", i)}); err != nil {
			return err
		}
	}
	fmt.Println("STORED")
	select {}
}

// TestReplicaAdoptsAKilledPeerFast: with the default options (a 30 s
// claim lease), a replica adopts what a killed peer held within 5 s: the
// peer's advisory lock went with its connection.
func TestReplicaAdoptsAKilledPeerFast(t *testing.T) {
	pool := testPool(t)
	prefix := testPrefix(t, pool)
	var handled intaketest.Counter
	b := intake.New(intake.WithQueue(newBackend(t, pool, prefix)), intake.WithLogger(quiet))
	b.Handle(handled.Handle, intake.WithWorkers(8))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() { cancel(); <-done }()

	cmd := startChild(t, "hold", prefix, 60*time.Second)
	time.Sleep(1500 * time.Millisecond) // the live peer keeps what it holds
	if early := handled.Len(); early != 0 {
		t.Fatalf("%d events taken from a live peer", early)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	for {
		n := handled.Len()
		if n == 100 {
			break
		}
		if time.Since(killed) > 20*time.Second {
			t.Fatalf("%d of 100 adopted 20 s after the kill", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(killed)
	t.Logf("all 100 events of the killed peer handled by the replica %v after the kill", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("adoption took %v, want at most 5 s", took)
	}
	for id, n := range handled.Counts() {
		if n != 1 {
			t.Errorf("%s handled %d times", id, n)
		}
	}
}

// stalled is a backend whose claim renewals never return: a holder that
// pauses (a long GC, a stopped process, a slow network) longer than
// every heartbeat.
type stalled struct{ *postgres.Backend }

func (s stalled) Extend(ctx context.Context, keys []string, lease time.Duration) error {
	if lease > 0 {
		<-ctx.Done()
		return ctx.Err()
	}
	return s.Backend.Extend(ctx, keys, lease)
}

// TestSlowLiveHolderKeepsItsClaims: a holder that stops renewing its
// claims for many leases, but is alive, keeps its events: another replica
// does not take them, and they are handled once.
func TestSlowLiveHolderKeepsItsClaims(t *testing.T) {
	pool := testPool(t)
	prefix := testPrefix(t, pool)
	var mu sync.Mutex
	handled := map[string]int{}
	record := func(who string) { mu.Lock(); handled[who]++; mu.Unlock() }
	const lease = 200 * time.Millisecond
	a := intake.New(intake.WithQueue(stalled{newBackend(t, pool, prefix)}), intake.WithClaimLease(lease), intake.WithLogger(quiet))
	release := make(chan struct{})
	started := make(chan struct{})
	a.Handle(func(ctx context.Context, e event.Event) error {
		close(started)
		<-release
		record("a")
		return nil
	}, intake.WithAckTimeout(time.Minute))
	b := intake.New(intake.WithQueue(newBackend(t, pool, prefix)), intake.WithClaimLease(lease), intake.WithLogger(quiet))
	b.Handle(func(ctx context.Context, e event.Event) error { record("b"); return nil })
	ctx, cancel := context.WithCancel(context.Background())
	adone, bdone := make(chan error, 1), make(chan error, 1)
	go func() { adone <- a.Run(ctx) }()
	go func() { bdone <- b.Run(ctx) }()
	if err := intaketest.Put(context.Background(), a, event.Event{Source: "api", ID: "slow"}); err != nil {
		t.Fatal(err)
	}
	<-started
	time.Sleep(10 * lease) // ten leases without a renewal
	close(release)
	time.Sleep(3 * lease)
	cancel()
	<-adone
	<-bdone
	mu.Lock()
	defer mu.Unlock()
	if handled["a"] != 1 || handled["b"] != 0 {
		t.Fatalf("handled by a %d times, by b %d times; want a once, b never", handled["a"], handled["b"])
	}
}

// startChild runs this test binary as a child in mode (INTAKE_PG_CHILD) on
// the tables under prefix and waits up to limit for it to say STORED: its
// events are in Postgres. The child is killed when the test ends.
func startChild(t *testing.T, mode, prefix string, limit time.Duration) *exec.Cmd {
	t.Helper()
	cmd, out := intaketest.Child(t, "INTAKE_PG_CHILD="+mode, "INTAKE_PG_PREFIX="+prefix)
	if line := intaketest.FirstLine(t, out, limit); line != "STORED" {
		t.Fatalf("child said %q (could it not store its events in %v?)", line, limit)
	}
	return cmd
}

// Issue #34, item 6: a process killed a second after each of five starts
// (the default options: 5 attempts) dead-letters nothing of a backlog it
// never delivered; a crash counts only against the events whose delivery
// had begun. It dead-lettered 209–316 of 1,200 before.
func TestCrashLoopBuriesNothingUndelivered(t *testing.T) {
	pool := testPool(t)
	prefix := testPrefix(t, pool)
	intaketest.CrashLoop(t, newBackend(t, pool, prefix), func() (*exec.Cmd, *bufio.Reader) {
		return intaketest.Child(t, "INTAKE_PG_CHILD=loop", "INTAKE_PG_PREFIX="+prefix)
	})
}
