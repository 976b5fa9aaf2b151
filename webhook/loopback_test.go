package webhook_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/webhook"
)

// BenchmarkLoopback sends signed 1 KiB webhooks over loopback HTTP with
// keep-alive from 16 concurrent clients to: a bare net/http handler that
// reads the body and answers 200 (the ceiling); intake's Handler with the
// memory stream and an instantly acking subscriber; and the same with a
// subscriber that takes 100 ms per event. It reports requests/s and the
// p50/p99 ack latency of each; compare them within one run:
//
//	go test ./webhook -run x -bench Loopback -benchtime 20000x
func BenchmarkLoopback(b *testing.B) {
	body := stripeLikeBody(1 << 10)
	b.Run("server=bare", func(b *testing.B) {
		bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusOK)
		})
		loopback(b, bare, body, http.StatusOK)
	})
	for _, sub := range []struct {
		name  string
		delay time.Duration
	}{{"instant", 0}, {"100ms", 100 * time.Millisecond}} {
		b.Run("server=intake/subscriber="+sub.name, func(b *testing.B) {
			s := intake.New(intake.WithLogger(quiet), intake.WithQueueSize(1<<20), intake.WithDrainTimeout(time.Millisecond),
				intake.WithStore(dedupe.NewMemory(dedupe.WithCapacity(1<<20))))
			h := webhook.New("github", webhook.GitHub(plainSec), webhook.WithLogger(quiet))
			s.Add(h)
			s.Handle(func(ctx context.Context, e event.Event) error {
				if sub.delay > 0 {
					select {
					case <-time.After(sub.delay):
					case <-ctx.Done():
					}
				}
				return nil
			}, intake.WithWorkers(4))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			for serve(h, githubRequest(plainSec, "warmup", body)).Code != http.StatusAccepted {
				time.Sleep(time.Millisecond)
			}
			loopback(b, h, body, http.StatusAccepted)
			cancel()
			<-done
		})
	}
}

func loopback(b *testing.B, h http.Handler, body []byte, want int) {
	srv := httptest.NewServer(h) // listens on 127.0.0.1
	defer srv.Close()
	const clients = 16
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}

	var next atomic.Int64
	lat := make([][]time.Duration, clients)
	var bad atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				id := fmt.Sprint("d-", i)
				body := append([]byte(id), body[len(id):]...) // each delivery's body its own
				hdr := webhook.SignGitHub(plainSec, id, "push", body)
				req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader(body))
				req.Header = hdr
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					bad.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat[c] = append(lat[c], time.Since(t0))
				if resp.StatusCode != want {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
	}
	if n := bad.Load(); n > 0 {
		b.Errorf("%d requests did not get %d", n, want)
	}
}
