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
)

// TestMain runs the test binary as the crash test's child process when
// INTAKE_PG_CHILD is set.
func TestMain(m *testing.M) {
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
		for {
			err := s.Put(ctx, e)
			if err == nil {
				break
			}
			if _, retry := event.RetryDelay(err); !retry {
				return fmt.Errorf("put %q: %w", e.ID, err)
			}
			time.Sleep(5 * time.Millisecond)
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

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "INTAKE_PG_CHILD=1", "INTAKE_PG_PREFIX="+prefix)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	said := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		said <- strings.TrimSpace(line)
	}()
	select {
	case line := <-said:
		if line != "STORED" {
			t.Fatalf("child said %q", line)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the child could not store the events in 20 s (a refusal retried forever?)")
	}
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
	for {
		err := a.Put(context.Background(), e)
		if err == nil {
			break
		}
		if _, retry := event.RetryDelay(err); !retry {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
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
