// Command compare measures polling, webhooks and the hybrid of both side by
// side, against a simulated provider on 127.0.0.1, and prints what each
// costs and how fast each is.
//
// The provider emits events as a Poisson process, delivers each as a
// signed webhook over a network that drops a fraction of deliveries (with
// an optional retry schedule), and serves them from a list API with
// ETags, Link pagination and a rate limit. Five consumers, each a real
// intake.Stream, receive them:
//
//   - polling: a poller of the list API, every -interval;
//   - webhooks: a webhook handler only;
//   - hybrid: the webhook handler plus a slow reconciliation poll
//     (-reconcile) that catches what the network dropped; the stream's
//     idempotency store delivers each event once, whichever path won;
//   - relay: webhooks to a public relay, long-polled by a consumer with
//     no listening socket;
//   - thin: webhooks that only name the object that changed, fetched on
//     demand (package fetch) before the handler sees the event, once per
//     object and gap, within the API's rate limit.
//
// Usage:
//
//	go run ./examples/compare [-duration 20s] [-rate 20] [-interval 2s] [-drop 0.1] [-retries 0] [-seed 1] [-out compare.svg] [-json]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/intakehq/intake"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"
)

type config struct {
	duration  time.Duration
	rate      float64
	interval  time.Duration
	reconcile time.Duration
	trigger   bool
	drop      float64
	retries   int
	latency   time.Duration
	size      int
	apiLimit  float64
	seed      uint64
	out       string
	json      bool
	quiet     bool
}

func main() {
	var cfg config
	flag.DurationVar(&cfg.duration, "duration", 20*time.Second, "how long the provider emits events")
	flag.Float64Var(&cfg.rate, "rate", 20, "events per second (mean of a Poisson process)")
	flag.DurationVar(&cfg.interval, "interval", 2*time.Second, "polling consumer's interval")
	flag.DurationVar(&cfg.reconcile, "reconcile", 3*time.Second, "hybrid consumer's reconciliation poll interval")
	flag.BoolVar(&cfg.trigger, "trigger", false, "hybrid: each webhook also triggers a poll for full state")
	flag.Float64Var(&cfg.drop, "drop", 0.1, "fraction of webhook deliveries lost in the network")
	flag.IntVar(&cfg.retries, "retries", 0, "provider retries after a lost delivery (0 like GitHub; after 250ms, 1s, 4s, …)")
	flag.DurationVar(&cfg.latency, "latency", 10*time.Millisecond, "one-way network latency")
	flag.IntVar(&cfg.size, "size", 512, "event body size in bytes")
	flag.Float64Var(&cfg.apiLimit, "api-limit", 5, "list API requests per second allowed per consumer (429 beyond)")
	flag.Uint64Var(&cfg.seed, "seed", 1, "seed of the event schedule and the drops: same seed, same run")
	flag.StringVar(&cfg.out, "out", "compare.svg", "where to write the chart (SVG)")
	flag.BoolVar(&cfg.json, "json", false, "print the results as JSON")
	flag.BoolVar(&cfg.quiet, "quiet", false, "no progress line")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	// The progress line rewrites itself with \r: only on a terminal.
	if !isTerminal(os.Stdout) || !isTerminal(os.Stderr) {
		cfg.quiet = true
	}
	rep, err := run(ctx, cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "compare:", err)
		os.Exit(1)
	}
	if cfg.json {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
		return
	}
	printTable(os.Stdout, rep)
}

// isTerminal reports whether f is a character device (a terminal), with
// no dependency beyond os.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// run runs one comparison and returns its report. Progress goes to
// progress unless cfg.quiet.
func run(ctx context.Context, cfg config, progress io.Writer) (*Report, error) {
	if cfg.rate <= 0 || cfg.duration <= 0 || cfg.interval <= 0 || cfg.reconcile <= 0 {
		return nil, errors.New("-rate, -duration, -interval and -reconcile must be positive")
	}
	if cfg.drop < 0 || cfg.drop > 1 || cfg.retries < 0 {
		return nil, errors.New("-drop must be within [0, 1] and -retries not negative")
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	secret := "whsec_Y29tcGFyZS1leGFtcGxlLXNpZ25pbmcta2V5LTAx"

	prov, err := newProvider(cfg, secret)
	if err != nil {
		return nil, err
	}
	defer prov.close()

	polling, err := newConsumer("polling", prov, cfg.interval, false, false, log)
	if err != nil {
		return nil, err
	}
	hooks, err := newConsumer("webhooks", prov, 0, true, false, log)
	if err != nil {
		return nil, err
	}
	hybrid, err := newConsumer("hybrid", prov, cfg.reconcile, true, cfg.trigger, log)
	if err != nil {
		return nil, err
	}
	relayed, err := newRelayConsumer("relay", prov, log)
	if err != nil {
		return nil, err
	}
	thin, err := newThinConsumer("thin", prov, log)
	if err != nil {
		return nil, err
	}
	consumers := []*consumer{polling, hooks, hybrid, relayed, thin}

	streamCtx, stopStreams := context.WithCancel(context.Background())
	var streams []*intake.Stream
	for _, c := range consumers {
		streams = append(streams, c.streams()...)
	}
	runDone := make(chan error, len(streams))
	for _, s := range streams {
		go func() { runDone <- s.Run(streamCtx) }()
	}
	defer func() {
		stopStreams()
		for range streams {
			<-runDone
		}
		for _, c := range consumers {
			c.close()
		}
	}()
	if err := waitRunning(ctx, hooks.url, hybrid.url, relayed.url, thin.url); err != nil {
		return nil, err
	}

	start := time.Now().Add(50 * time.Millisecond)
	emitted := make(chan struct{})
	go func() {
		defer close(emitted)
		prov.run(ctx, start, map[string]string{"webhooks": hooks.url, "hybrid": hybrid.url, "relay": relayed.url, "thin": thin.url})
	}()
	deliveriesDone := make(chan struct{})
	go func() {
		<-emitted
		prov.inflight.Wait()
		close(deliveriesDone)
	}()

	// Run until the schedule is emitted, then give the pollers time to catch
	// up: at most their longest interval (and the retry schedule) more.
	total := len(prov.events)
	grace := max(cfg.interval, cfg.reconcile) + time.Second
	// The thin consumer fetches within the API's rate: at the end, up to
	// one fetch per object.
	grace = max(grace, time.Duration(float64(objects)/max(cfg.apiLimit, 0.1)*float64(time.Second))+time.Second)
	for k := 1; k <= cfg.retries; k++ {
		grace += retryDelay(k)
	}
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var deadline <-chan time.Time
	for finished := false; !finished; {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-emitted:
			emitted = nil
			deadline = time.After(grace)
		case <-deadline:
			finished = true
		case <-tick.C:
			if !cfg.quiet {
				fmt.Fprintf(progress, "\r%5.1fs  emitted %4d/%d   delivered: polling %4d · webhooks %4d · hybrid %4d · relay %4d · thin %4d ",
					time.Since(start).Seconds(), prov.emittedCount(), total, polling.count(), hooks.count(), hybrid.count(), relayed.count(), thin.count())
			}
			select {
			case <-deliveriesDone:
				finished = emitted == nil && polling.count() == total && hybrid.count() == total &&
					int64(thin.count())+prov.snapshot("thin").unrecovered == int64(total)
			default:
			}
		}
	}
	elapsed := time.Since(start)
	if !cfg.quiet {
		fmt.Fprintln(progress)
	}

	rep := &Report{Config: cfg.public(), Emitted: total, Elapsed: elapsed.Round(time.Millisecond).String()}
	for _, c := range consumers {
		rep.Consumers = append(rep.Consumers, c.report(prov, total))
	}
	if cfg.out != "" {
		if err := os.WriteFile(cfg.out, chart(rep), 0o644); err != nil {
			return nil, err
		}
		rep.Chart = cfg.out
	}
	return rep, nil
}

// waitRunning waits until the webhook endpoints answer as running: an
// unsigned request gets 401 from a running handler and 503 before.
func waitRunning(ctx context.Context, urls ...string) error {
	for _, u := range urls {
		for {
			resp, err := http.Post(u, "application/json", strings.NewReader("{}"))
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != http.StatusServiceUnavailable {
					break
				}
			}
			if !sleepCtx(ctx, 5*time.Millisecond) {
				return ctx.Err()
			}
		}
	}
	return nil
}

func (p *provider) emittedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.emitted
}

// Report is the result of one run; -json prints it.
type Report struct {
	Config    publicConfig     `json:"config"`
	Emitted   int              `json:"events_emitted"`
	Elapsed   string           `json:"elapsed"`
	Consumers []ConsumerReport `json:"consumers"`
	Chart     string           `json:"chart,omitempty"`
}

type publicConfig struct {
	Duration  string  `json:"duration"`
	Rate      float64 `json:"rate_per_second"`
	Interval  string  `json:"poll_interval"`
	Reconcile string  `json:"reconcile_interval"`
	Trigger   bool    `json:"trigger"`
	Drop      float64 `json:"drop"`
	Retries   int     `json:"retries"`
	Latency   string  `json:"latency"`
	Size      int     `json:"size_bytes"`
	APILimit  float64 `json:"api_limit_per_second"`
	Seed      uint64  `json:"seed"`
}

func (c config) public() publicConfig {
	return publicConfig{
		Duration: c.duration.String(), Rate: c.rate, Interval: c.interval.String(), Reconcile: c.reconcile.String(),
		Trigger: c.trigger, Drop: c.drop, Retries: c.retries, Latency: c.latency.String(), Size: c.size,
		APILimit: c.apiLimit, Seed: c.seed,
	}
}

// ConsumerReport is one consumer's line of the table.
type ConsumerReport struct {
	Name                 string  `json:"name"`
	Delivered            int     `json:"delivered"`
	Missed               int     `json:"missed"`
	DuplicatesSuppressed int64   `json:"duplicates_suppressed"`
	DuplicatesDelivered  int     `json:"duplicates_delivered"`
	LatencyMS            Latency `json:"latency_ms"`
	Requests             int64   `json:"http_requests"`
	APIRequests          int64   `json:"api_requests"`
	Webhooks             int64   `json:"webhook_requests"`
	WebhooksLost         int64   `json:"webhook_deliveries_lost"`
	WebhooksUnrecovered  int64   `json:"webhook_events_unrecovered"`
	EmptyPolls           int64   `json:"empty_polls"`
	NotModified          int64   `json:"not_modified"`
	RateLimited          int64   `json:"rate_limited"`
	Bytes                int64   `json:"bytes_received"`
	Complete             int     `json:"payloads_complete"`
	Fetches              int64   `json:"objects_fetched,omitempty"`
	Coalesced            int64   `json:"fetches_coalesced,omitempty"`

	latencies []time.Duration
	perSecond map[int]int64
}

// Latency summarises delivery latencies: from when the event happened at
// the provider to when the consumer's subscriber received it.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

func (c *consumer) report(p *provider, emitted int) ConsumerReport {
	c.mu.Lock()
	lat := make([]time.Duration, 0, len(c.delivered))
	for id, at := range c.delivered {
		if t, ok := p.happenedAt(id); ok {
			lat = append(lat, at.Sub(t))
		}
	}
	r := ConsumerReport{Name: c.name, Delivered: len(c.delivered), Missed: emitted - len(c.delivered), DuplicatesDelivered: c.redeliver, Complete: c.complete}
	c.mu.Unlock()
	slices.Sort(lat)
	r.latencies = lat
	r.LatencyMS = summarize(lat)
	r.DuplicatesSuppressed = c.dups.Load()
	s := p.snapshot(c.name)
	r.APIRequests, r.Webhooks = s.apiRequests, s.webhooks
	if c.feed != nil {
		r.APIRequests += c.feed.Requests() // the consumer's long polls of the relay
	}
	r.Requests = r.APIRequests + s.webhooks
	r.WebhooksLost, r.WebhooksUnrecovered = s.webhooksDropped, s.unrecovered
	r.EmptyPolls, r.NotModified, r.RateLimited, r.Bytes = s.emptyPolls, s.notModified, s.rateLimited, s.bytes
	r.perSecond = s.perSecond
	if c.fetcher != nil {
		st := c.fetcher.Stats()
		r.Fetches, r.Coalesced = st.Fetches, st.Coalesced
	}
	return r
}

func summarize(sorted []time.Duration) Latency {
	if len(sorted) == 0 {
		return Latency{}
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	q := func(f float64) float64 { return ms(sorted[min(len(sorted)-1, int(f*float64(len(sorted))))]) }
	var sum time.Duration
	for _, d := range sorted {
		sum += d
	}
	return Latency{P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: ms(sorted[len(sorted)-1]), Mean: ms(sum / time.Duration(len(sorted)))}
}

func printTable(w io.Writer, r *Report) {
	c := r.Config
	retries := "no retries"
	if c.Retries > 0 {
		retries = fmt.Sprintf("%d retries", c.Retries)
	}
	fmt.Fprintf(w, "\nintake compare: %s of events (Poisson, %.0f/s, seed %d) → %d emitted\n", c.Duration, c.Rate, c.Seed, r.Emitted)
	fmt.Fprintf(w, "polling every %s · webhooks with %.0f%% of deliveries lost, %s · hybrid = webhooks + reconciliation poll every %s\n",
		c.Interval, 100*c.Drop, retries, c.Reconcile)
	fmt.Fprintf(w, "relay = webhooks to a public relay, long-polled · thin = webhooks naming the object, fetched on demand (%d objects)\n\n", objects)

	row := func(label string, f func(ConsumerReport) string) {
		fmt.Fprintf(w, "  %-24s", label)
		for _, cr := range r.Consumers {
			fmt.Fprintf(w, "%12s", f(cr))
		}
		fmt.Fprintln(w)
	}
	num := func(n int64) string { return fmt.Sprint(n) }
	row("", func(cr ConsumerReport) string { return cr.Name })
	row("", func(cr ConsumerReport) string { return strings.Repeat("─", len(cr.Name)) })
	row("events delivered", func(cr ConsumerReport) string { return fmt.Sprint(cr.Delivered) })
	row("events missed", func(cr ConsumerReport) string { return fmt.Sprint(cr.Missed) })
	row("duplicates suppressed", func(cr ConsumerReport) string { return num(cr.DuplicatesSuppressed) })
	row("duplicates delivered", func(cr ConsumerReport) string { return fmt.Sprint(cr.DuplicatesDelivered) })
	row("payloads complete", func(cr ConsumerReport) string { return fmt.Sprint(cr.Complete) })
	row("objects fetched", func(cr ConsumerReport) string { return num(cr.Fetches) })
	row("  events coalesced", func(cr ConsumerReport) string { return num(cr.Coalesced) })
	row("latency p50", func(cr ConsumerReport) string { return dur(cr.LatencyMS.P50) })
	row("latency p90", func(cr ConsumerReport) string { return dur(cr.LatencyMS.P90) })
	row("latency p99", func(cr ConsumerReport) string { return dur(cr.LatencyMS.P99) })
	row("latency max", func(cr ConsumerReport) string { return dur(cr.LatencyMS.Max) })
	row("latency mean", func(cr ConsumerReport) string { return dur(cr.LatencyMS.Mean) })
	row("HTTP requests", func(cr ConsumerReport) string { return num(cr.Requests) })
	row("  API or feed polls", func(cr ConsumerReport) string { return num(cr.APIRequests) })
	row("  webhooks received", func(cr ConsumerReport) string { return num(cr.Webhooks) })
	row("webhooks lost in transit", func(cr ConsumerReport) string { return num(cr.WebhooksLost) })
	row("empty polls", func(cr ConsumerReport) string { return num(cr.EmptyPolls) })
	row("304 Not Modified", func(cr ConsumerReport) string { return num(cr.NotModified) })
	row("429 Too Many Requests", func(cr ConsumerReport) string { return num(cr.RateLimited) })
	row("bytes received", func(cr ConsumerReport) string { return bytesStr(cr.Bytes) })
	fmt.Fprintf(w, "\n  ran %s; chart: %s\n", r.Elapsed, r.Chart)
}

func dur(ms float64) string {
	switch {
	case ms == 0:
		return "-"
	case ms < 1000:
		return fmt.Sprintf("%.1f ms", ms)
	default:
		return fmt.Sprintf("%.2f s", ms/1000)
	}
}

func bytesStr(n int64) string {
	switch {
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
