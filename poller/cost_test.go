package poller_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/poller"
)

// BenchmarkPollingCost polls a fake API whose events appear at a known
// rate (one per 20 ms) every 100 ms for one second, and reports what
// polling costs: HTTP requests per delivered event, the share of empty
// polls, and the mean latency from an event's creation to its delivery
// (expected: about half the interval).
//
//	go test ./poller -run x -bench PollingCost -benchtime 1x
func BenchmarkPollingCost(b *testing.B) {
	for _, interval := range []time.Duration{20 * time.Millisecond, 100 * time.Millisecond} {
		b.Run("interval="+interval.String(), func(b *testing.B) {
			for range b.N {
				pollingCost(b, 20*time.Millisecond, interval, time.Second)
			}
		})
	}
}

func pollingCost(b *testing.B, every, interval, run time.Duration) {
	start := time.Now()
	created := func(i int) time.Time { return start.Add(time.Duration(i) * every) }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		after, _ := strconv.Atoi(r.URL.Query().Get("after"))
		var ids []int
		for i := after + 1; !created(i).After(time.Now()); i++ {
			ids = append(ids, i)
		}
		_ = json.NewEncoder(w).Encode(ids)
	}))
	defer srv.Close()
	fetch := poller.HTTP(nil, func(ctx context.Context, cursor string) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/events?after="+cursor, nil)
	}, func(resp *http.Response, body []byte) (poller.Page, error) {
		var ids []int
		if err := json.Unmarshal(body, &ids); err != nil || len(ids) == 0 {
			return poller.Page{}, err
		}
		events := make([]event.Event, len(ids))
		for i, id := range ids {
			events[i] = event.Event{ID: strconv.Itoa(id), Time: created(id)}
		}
		return poller.Page{Events: events, Next: strconv.Itoa(ids[len(ids)-1])}, nil
	})
	var mu sync.Mutex
	var total time.Duration
	var n int
	sink := event.SinkFunc(func(_ context.Context, e event.Event) error {
		mu.Lock()
		total += e.Received.Sub(e.Time)
		n++
		mu.Unlock()
		return nil
	})
	p := poller.New("api", fetch, poller.Every(interval), poller.WithLogger(quiet))
	ctx, cancel := context.WithTimeout(context.Background(), run)
	defer cancel()
	_ = p.Run(ctx, sink)
	st, hs := p.Stats(), fetch.Stats()
	mu.Lock()
	defer mu.Unlock()
	if n == 0 {
		b.Fatal("no event delivered")
	}
	b.ReportMetric(float64(hs.Requests)/float64(n), "requests/event")
	b.ReportMetric(float64(st.Empty)/float64(st.Polls), "empty-share")
	b.ReportMetric(float64((total / time.Duration(n)).Milliseconds()), "mean-latency-ms")
	b.ReportMetric(float64(n), "events")
}
