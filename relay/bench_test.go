package relay_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/poller"
	"github.com/intakehq/intake/relay"
	"github.com/intakehq/intake/webhook"
)

// BenchmarkRelayLatency sends signed webhooks at a steady pace (one every
// 2 ms, so that the feed is idle between them) and measures, from the
// send to the consumer's handler, direct delivery (the webhook handler in
// the consumer's own stream) and delivery through a relay (the consumer
// long-polls the relay's feed), in the same run; it reports p50 and p99
// of each and the relay consumer's feed requests per event:
//
//	go test ./relay -run x -bench RelayLatency -benchtime 2000x
func BenchmarkRelayLatency(b *testing.B) {
	for _, mode := range []string{"direct", "relay"} {
		b.Run("delivery="+mode, func(b *testing.B) {
			lat, perEvent := relayRound(b, mode, b.N)
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			if mode == "relay" {
				b.ReportMetric(perEvent, "polls/event")
			}
		})
	}
}

func relayRound(b *testing.B, mode string, n int) ([]time.Duration, float64) {
	var mu sync.Mutex
	sent := map[string]time.Time{}
	var lat []time.Duration
	got := make(chan struct{}, n)
	handle := func(ctx context.Context, e event.Event) error {
		mu.Lock()
		lat = append(lat, time.Since(sent[e.ID]))
		mu.Unlock()
		got <- struct{}{}
		return nil
	}
	hook := webhook.New("github", webhook.GitHub(secret), webhook.WithLogger(quiet), webhook.WithReplayGuard(nil))
	consumer := intake.New(intake.WithLogger(quiet))
	consumer.Handle(handle, intake.WithWorkers(4))
	streams := []*intake.Stream{consumer}
	mux := http.NewServeMux()
	mux.Handle("POST /hooks", hook)
	var fetch *relay.Fetcher
	if mode == "direct" {
		consumer.Add(hook)
	} else {
		feed := &relay.MemoryFeed{}
		public := intake.New(intake.WithLogger(quiet))
		public.Add(hook)
		public.Handle(relay.New(feed, 0).Store, intake.WithWorkers(4))
		streams = append(streams, public)
		mux.Handle("GET /feed", relay.NewHandler(feed, []string{"t"}, relay.WithLogger(quiet)))
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	if mode == "relay" {
		fetch = relay.NewFetcher(srv.URL+"/feed", "t", relay.WithWait(30*time.Second))
		consumer.Add(poller.New("relay", fetch, poller.LongPoll(), poller.KeepSource(), poller.WithLogger(quiet)))
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, s := range streams {
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.Run(ctx) }()
	}
	defer func() { cancel(); wg.Wait() }()
	client := &http.Client{}
	post := func(id string) int {
		body := []byte(`{"delivery":"` + id + `"}`)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/hooks", bytes.NewReader(body))
		req.Header = webhook.SignGitHub(secret, id, "push", body)
		resp, err := client.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for post("warmup") != http.StatusAccepted {
		time.Sleep(time.Millisecond)
	}
	<-got
	mu.Lock()
	lat = lat[:0]
	mu.Unlock()
	var before int64
	if fetch != nil {
		before = fetch.Requests()
	}
	b.ResetTimer()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for i := range n {
		<-tick.C
		id := fmt.Sprint(mode, "-", i)
		mu.Lock()
		sent[id] = time.Now()
		mu.Unlock()
		if code := post(id); code != http.StatusAccepted {
			b.Fatalf("status %d", code)
		}
	}
	for range n {
		<-got
	}
	b.StopTimer()
	perEvent := 0.0
	if fetch != nil {
		perEvent = float64(fetch.Requests()-before) / float64(n)
	}
	mu.Lock()
	defer mu.Unlock()
	return append([]time.Duration(nil), lat...), perEvent
}
