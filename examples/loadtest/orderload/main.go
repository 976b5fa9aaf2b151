// Command orderload measures ordered subscriptions on a Postgres queue:
// the throughput of one ordered by object against the same subscription
// unordered (rounds interleaved, one run), a single hot object against
// the handler's own speed, and a backlog of many objects drained in
// order, with the process's peak memory.
//
//	go run ./examples/loadtest/orderload [-events 20000] [-keys 1000] [-work 1ms] [-workers 64] [-rounds 3]
//	go run ./examples/loadtest/orderload -backlog 1000000 -backlog-keys 100000
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/postgres"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/examples/loadtest/internal/pgtest"
)

// Config is one measurement.
type Config struct {
	DSN       string
	Events    int           // events per round
	Keys      int           // objects they are about
	Work      time.Duration // each handler call's
	Workers   int
	Unordered bool
}

// Result is a round's outcome.
type Result struct {
	Mode      string  `json:"mode"`
	Events    int     `json:"events"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
	Overlaps  int64   `json:"overlaps"`  // handlings that began while another of their object ran
	Backwards int64   `json:"backwards"` // handlings of an event after a later one of its object
	Busy      float64 `json:"busy"`      // handler time ÷ wall time: 1 is one call at a time without a gap
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// keyOf is the object of an event "k<obj>-<n>".
func keyOf(e event.Event) string {
	k, _, _ := strings.Cut(e.ID, "-")
	return k
}

func nOf(id string) int64 {
	_, n, _ := strings.Cut(id, "-")
	v, _ := strconv.ParseInt(n, 10, 64)
	return v
}

// tracker checks each object's handlings: one at a time, in order.
type tracker struct {
	mu        sync.Mutex
	running   map[string]bool
	last      map[string]int64
	overlaps  atomic.Int64
	backwards atomic.Int64
	handled   atomic.Int64
	busy      atomic.Int64 // nanoseconds in handler calls
}

func newTracker() *tracker {
	return &tracker{running: map[string]bool{}, last: map[string]int64{}}
}

func (t *tracker) begin(k string, n int64) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.running[k] {
		t.overlaps.Add(1)
	}
	t.running[k] = true
	if last, ok := t.last[k]; ok && n < last {
		t.backwards.Add(1)
	}
	t.last[k] = n
	return time.Now()
}

func (t *tracker) end(k string, began time.Time) {
	t.busy.Add(int64(time.Since(began)))
	t.mu.Lock()
	delete(t.running, k)
	t.mu.Unlock()
	t.handled.Add(1)
}

// newPrefix returns a fresh table prefix.
func newPrefix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "ord" + hex.EncodeToString(b[:]) + "_"
}

// Run puts cfg.Events events about cfg.Keys objects (each object's events
// put in order, objects interleaved) into a stream on a fresh Postgres
// queue, and times until every one is handled.
func Run(ctx context.Context, cfg Config) (Result, error) {
	pool, err := pgxpool.New(ctx, cfg.DSN)
	if err != nil {
		return Result{}, err
	}
	defer pool.Close()
	prefix := newPrefix()
	defer pgtest.DropPrefix(pool, prefix)
	pg, err := postgres.New(ctx, pool, postgres.WithPrefix(prefix))
	if err != nil {
		return Result{}, err
	}
	defer pg.Close()
	s := intake.New(intake.WithQueue(pg), intake.WithLogger(quiet), intake.WithOrderKey(keyOf))
	tr := newTracker()
	opts := []intake.SubscribeOption{intake.WithWorkers(cfg.Workers)}
	mode := "ordered"
	if cfg.Unordered {
		opts = append(opts, intake.WithUnordered())
		mode = "unordered"
	}
	s.Handle(func(ctx context.Context, e event.Event) error {
		k := keyOf(e)
		began := tr.begin(k, nOf(e.ID))
		if cfg.Work > 0 {
			time.Sleep(cfg.Work)
		}
		tr.end(k, began)
		return nil
	}, opts...)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	defer func() { cancel(); <-done }()
	<-s.Started()

	began := time.Now()
	per := cfg.Events / cfg.Keys
	var wg sync.WaitGroup
	const putters = 32
	var putErr atomic.Value
	for w := range putters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range per {
				for k := w; k < cfg.Keys; k += putters {
					e := event.Event{Source: "load", ID: fmt.Sprintf("k%d-%d", k, n), Type: "t", Payload: []byte(`{}`)}
					for {
						err := s.Put(ctx, e)
						if err == nil || errors.Is(err, event.ErrDuplicate) {
							break
						}
						if !errors.Is(err, event.ErrQueueFull) {
							putErr.Store(err)
							return
						}
						time.Sleep(time.Millisecond)
					}
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := putErr.Load().(error); err != nil {
		return Result{}, err
	}
	total := int64(per * cfg.Keys)
	for tr.handled.Load() < total {
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		time.Sleep(time.Millisecond)
	}
	secs := time.Since(began).Seconds()
	return Result{Mode: mode, Events: int(total), Seconds: secs, PerSecond: float64(total) / secs,
		Overlaps: tr.overlaps.Load(), Backwards: tr.backwards.Load(), Busy: time.Duration(tr.busy.Load()).Seconds() / secs}, nil
}

func main() {
	var cfg Config
	var rounds, backlog, backlogKeys int
	flag.IntVar(&cfg.Events, "events", 20000, "events per round")
	flag.IntVar(&cfg.Keys, "keys", 1000, "objects the events are about")
	flag.DurationVar(&cfg.Work, "work", time.Millisecond, "each handler call's time")
	flag.IntVar(&cfg.Workers, "workers", 64, "handler calls at once")
	flag.IntVar(&rounds, "rounds", 3, "rounds of each mode, interleaved")
	flag.IntVar(&backlog, "backlog", 0, "instead: queue this many events, then drain them ordered")
	flag.IntVar(&backlogKeys, "backlog-keys", 100000, "objects of the backlog's events")
	flag.BoolVar(&cfg.Unordered, "unordered", false, "with -backlog: drain it unordered, for comparison")
	flag.Parse()
	cfg.DSN = pgtest.DSN()
	ctx := context.Background()
	if backlog > 0 {
		res, err := Backlog(ctx, cfg.DSN, backlog, backlogKeys, cfg.Workers, cfg.Unordered)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Printf("%+v\n", res)
		return
	}
	var sum [2]float64
	for r := range rounds {
		for i, unordered := range []bool{false, true} {
			c := cfg
			c.Unordered = unordered
			res, err := Run(ctx, c)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			sum[i] += res.PerSecond
			fmt.Printf("round %d %-9s %6d events over %d objects in %.2f s: %8.0f/s, %d overlaps, %d out of order\n",
				r+1, res.Mode, res.Events, cfg.Keys, res.Seconds, res.PerSecond, res.Overlaps, res.Backwards)
		}
	}
	fmt.Printf("ordered ÷ unordered: %.2f× (%.0f/s ÷ %.0f/s, means of %d rounds)\n", sum[0]/sum[1], sum[0]/float64(rounds), sum[1]/float64(rounds), rounds)
	hot := cfg
	hot.Keys, hot.Events = 1, min(cfg.Events, 2000)
	res, err := Run(ctx, hot)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The handler's own speed: one call after another, no gap, at the
	// calls' measured mean time.
	fmt.Printf("one hot object: %d events in %.2f s: %.0f/s = %.2f× the handler's own speed (%.0f/s at its measured mean), %d overlaps, %d out of order\n",
		res.Events, res.Seconds, res.PerSecond, res.Busy, res.PerSecond/res.Busy, res.Overlaps, res.Backwards)
}
