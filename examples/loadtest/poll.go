package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/poller"
)

// PollResult is one line of the polling half: how fast a backlog of
// events is drained from a list API.
type PollResult struct {
	Target    string  `json:"target"`
	Events    int     `json:"events"`
	Requests  int64   `json:"requests"`
	PerSecond float64 `json:"events_per_second"`
	Ratio     float64 `json:"ratio_to_bare"`
}

const pollPage = 100

// listAPI serves GET /events?after=<n>: events n+1… up to total, a page at
// a time, as JSON.
func listAPI(total int, requests *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		after, _ := strconv.Atoi(r.URL.Query().Get("after"))
		type item struct {
			ID   string `json:"id"`
			Type string `json:"type"`
			N    int    `json:"n"`
		}
		var page []item
		for i := after + 1; i <= total && len(page) < pollPage; i++ {
			page = append(page, item{ID: "evt_" + strconv.Itoa(i), Type: "thing.created", N: i})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(page)
	})
}

// pollLoad drains a backlog of events from a list API twice: with a bare
// loop of GETs and JSON decoding (the ceiling), and with intake's poller
// (greedy paging) into a memory stream whose handler counts them.
func pollLoad(total int) ([]PollResult, error) {
	var requests atomic.Int64
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: listAPI(total, &requests), ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	base := "http://" + ln.Addr().String() + "/events?after="
	client := &http.Client{Timeout: 10 * time.Second}

	// The ceiling: fetch and decode every page in a loop.
	start := time.Now()
	got, cursor := 0, 0
	for got < total {
		resp, err := client.Get(base + strconv.Itoa(cursor))
		if err != nil {
			return nil, err
		}
		var page []struct {
			ID string `json:"id"`
			N  int    `json:"n"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || len(page) == 0 {
			return nil, fmt.Errorf("bare poll: %v after %d events", err, got)
		}
		got += len(page)
		cursor = page[len(page)-1].N
	}
	bare := PollResult{Target: "bare loop: GET and decode each page (the ceiling)", Events: got, Requests: requests.Load(),
		PerSecond: float64(got) / time.Since(start).Seconds(), Ratio: 1}

	// intake: a poller into a stream.
	requests.Store(0)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s := intake.New(intake.WithLogger(quiet), intake.WithQueueSize(4*pollPage))
	var handled atomic.Int64
	done := make(chan struct{})
	s.Handle(func(context.Context, event.Event) error {
		if handled.Add(1) == int64(total) {
			close(done)
		}
		return nil
	}, intake.WithWorkers(4))
	fetch := poller.HTTP(client, func(ctx context.Context, cursor string) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, base+cursor, nil)
	}, func(resp *http.Response, body []byte) (poller.Page, error) {
		var page []struct {
			ID   string `json:"id"`
			Type string `json:"type"`
			N    int    `json:"n"`
		}
		if err := json.Unmarshal(body, &page); err != nil || len(page) == 0 {
			return poller.Page{}, err
		}
		events := make([]event.Event, len(page))
		for i, it := range page {
			events[i] = event.Event{ID: it.ID, Type: it.Type}
		}
		return poller.Page{Events: events, Next: strconv.Itoa(page[len(page)-1].N)}, nil
	})
	s.Add(poller.New("api", fetch, poller.Every(time.Hour), poller.Greedy(pollPage), poller.WithMaxPages(1<<20), poller.WithLogger(quiet)))
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	start = time.Now()
	go func() { runDone <- s.Run(ctx) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		cancel()
		<-runDone
		return nil, fmt.Errorf("poller delivered %d of %d events in a minute", handled.Load(), total)
	}
	elapsed := time.Since(start)
	cancel()
	if err := <-runDone; err != nil {
		return nil, err
	}
	polled := PollResult{Target: "intake poller (greedy) → memory stream → handler", Events: total, Requests: requests.Load(),
		PerSecond: float64(total) / elapsed.Seconds()}
	polled.Ratio = polled.PerSecond / bare.PerSecond
	return []PollResult{bare, polled}, nil
}
