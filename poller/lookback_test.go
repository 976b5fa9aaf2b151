package poller_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/poller"
)

// lateAPI lists records by timestamp after a time cursor. Each poll, the
// clock moves a second and ten records are written; one in twenty is
// back-dated by up to backdate (it committed late), so that it is listed
// behind a cursor that has already passed it.
type lateAPI struct {
	rng      *rand.Rand
	backdate time.Duration
	now      time.Time
	records  []record
	written  int
}

type record struct {
	id string
	at time.Time
}

func (a *lateAPI) Fetch(_ context.Context, cursor string) (poller.Page, error) {
	a.now = a.now.Add(time.Second)
	for range 10 {
		at := a.now
		if a.rng.IntN(20) == 0 {
			at = at.Add(-time.Duration(a.rng.Int64N(int64(a.backdate))))
		}
		a.records = append(a.records, record{fmt.Sprintf("r%05d", a.written), at})
		a.written++
	}
	after, _ := time.Parse(time.RFC3339Nano, cursor)
	var pg poller.Page
	next := after
	for _, r := range a.records {
		if r.at.After(after) {
			pg.Events = append(pg.Events, event.Event{ID: r.id, Payload: []byte("{}")})
			if r.at.After(next) {
				next = r.at
			}
		}
	}
	pg.Next = next.Format(time.RFC3339Nano)
	return pg, nil
}

type setSink struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (s *setSink) Put(_ context.Context, e event.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.seen[e.ID] {
		return event.ErrDuplicate
	}
	s.seen[e.ID] = true
	return nil
}

// TestLookbackFindsBackdatedRecords polls 200 times an API that back-dates
// 5% of its records by up to 30 s: with a 30 s lookback none is missed,
// and the overlap is answered as duplicates; without it, some are.
func TestLookbackFindsBackdatedRecords(t *testing.T) {
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name     string
		lookback time.Duration
	}{{"without", 0}, {"with 30s", 30 * time.Second}} {
		t.Run(tc.name, func(t *testing.T) {
			api := &lateAPI{rng: rand.New(rand.NewPCG(1, 2)), backdate: 30 * time.Second, now: start}
			var f poller.Fetcher = api
			if tc.lookback > 0 {
				f = poller.Lookback(tc.lookback, api)
			}
			p := poller.New("api", f, poller.WithMaxPages(1))
			s := &setSink{seen: map[string]bool{}}
			cursor := start.Format(time.RFC3339Nano)
			var dups int64
			for range 200 {
				out, err := p.Once(context.Background(), s, cursor)
				if err != nil {
					t.Fatal(err)
				}
				if out.Cursor < cursor {
					t.Fatalf("cursor moved back from %s to %s", cursor, out.Cursor)
				}
				cursor, dups = out.Cursor, dups+out.Duplicates
			}
			// The last poll's own records are all listed; what is
			// missing was passed by the cursor before it was written.
			missed := api.written - len(s.seen)
			t.Logf("%d records, %d missed, %d duplicates fetched again", api.written, missed, dups)
			if tc.lookback == 0 && missed == 0 {
				t.Fatal("without a lookback nothing was missed: the test cannot tell")
			}
			if tc.lookback > 0 {
				if missed != 0 {
					t.Fatalf("%d back-dated records missed with the lookback", missed)
				}
				if dups == 0 {
					t.Fatal("the lookback's overlap was not counted as duplicates")
				}
			}
		})
	}
}

func TestOnceReportsThePoll(t *testing.T) {
	pages := []poller.Page{
		{Events: []event.Event{{ID: "a"}, {ID: "b"}}, Next: "2", More: true},
		{Events: []event.Event{{ID: "b"}, {ID: "c"}}, Next: "3", Wait: time.Minute},
	}
	i := 0
	p := poller.New("api", poller.FetchFunc(func(context.Context, string) (poller.Page, error) {
		pg := pages[i]
		i++
		return pg, nil
	}), poller.WithInitialCursor("0"))
	out, err := p.Once(context.Background(), &setSink{seen: map[string]bool{}}, "")
	if err != nil {
		t.Fatal(err)
	}
	want := poller.Outcome{Cursor: "3", Wait: time.Minute, Pages: 2, Events: 3, Duplicates: 1}
	if out != want {
		t.Fatalf("Once = %+v, want %+v", out, want)
	}
}
