package oteltracing_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/postgres"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/poller"
	"github.com/intakehq/intake/relay"
	"github.com/intakehq/intake/tracing"
	"github.com/intakehq/intake/tracing/oteltracing"
	"github.com/intakehq/intake/webhook"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const secret = "whsec_test"

// recorder is an OpenTelemetry SDK provider whose spans land in memory
// as they end.
func recorder() (*oteltracing.Tracer, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	return oteltracing.New(tp), exp
}

// find returns the ended spans named name whose attribute key is value
// ("" key: any).
func find(exp *tracetest.InMemoryExporter, name, key, value string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Name != name {
			continue
		}
		ok := key == ""
		for _, a := range s.Attributes {
			if string(a.Key) == key && a.Value.Emit() == value {
				ok = true
			}
		}
		if ok {
			out = append(out, s)
		}
	}
	return out
}

// linksTo says whether span s links to the span context sc.
func linksTo(s tracetest.SpanStub, sc trace.SpanContext) bool {
	for _, l := range s.Links {
		if l.SpanContext.TraceID() == sc.TraceID() && l.SpanContext.SpanID() == sc.SpanID() {
			return true
		}
	}
	return false
}

// run runs the streams until the stop it returns is called (or the test
// ends); stop waits for them, and fails the test on an error.
func run(t testing.TB, streams ...*intake.Stream) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, len(streams))
	for _, s := range streams {
		go func() { done <- s.Run(ctx) }()
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			for range streams {
				if err := <-done; err != nil {
					t.Error(err)
				}
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// post sends a signed Stripe event to url until it is accepted.
func post(t *testing.T, url, id string, header http.Header) {
	t.Helper()
	body := []byte(fmt.Sprintf(`{"id":%q,"object":"event","type":"invoice.paid"}`, id))
	for range 500 {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header = webhook.SignStripe(secret, time.Now(), body)
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusAccepted {
			return
		}
		time.Sleep(10 * time.Millisecond) // 503 until the stream runs
	}
	t.Fatalf("%s never accepted", id)
}

func TestFormatParse(t *testing.T) {
	for _, tc := range []struct {
		in    tracing.Link
		valid bool
	}{
		{tracing.Link{Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Tracestate: "rojo=00f067aa0ba902b7"}, true},
		{tracing.Link{Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}, true},
		{tracing.Link{Traceparent: "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}, false}, // zero trace id
		{tracing.Link{Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"}, false}, // zero span id
		{tracing.Link{Traceparent: "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, false}, // version ff
		{tracing.Link{Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x"}, false},
		{tracing.Link{Traceparent: "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"}, false}, // upper case
		{tracing.Link{Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g"}, false},
		{tracing.Link{Traceparent: "garbage"}, false},
		{tracing.Link{Traceparent: "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, false},  // version not hex
		{tracing.Link{Traceparent: "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x"}, false}, // more, not after a dash
		{tracing.Link{}, false},
	} {
		sc := oteltracing.Parse(tc.in)
		if sc.IsValid() != tc.valid {
			t.Errorf("Parse(%q) valid = %v, want %v", tc.in.Traceparent, sc.IsValid(), tc.valid)
			continue
		}
		if tc.valid {
			if got := oteltracing.Format(sc); got != tc.in {
				t.Errorf("Format(Parse(%v)) = %v", tc.in, got)
			}
		}
	}
}

// FuzzParse: a traceparent comes from a webhook request's headers; Parse
// never panics, and what it accepts formats back to itself.
func FuzzParse(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "rojo=00f067aa0ba902b7")
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff", "")
	f.Fuzz(func(t *testing.T, tp, ts string) {
		sc := oteltracing.Parse(tracing.Link{Traceparent: tp, Tracestate: ts})
		if !sc.IsValid() {
			return
		}
		// Format writes version 00 with the fields read (a later version's
		// extra fields dropped, the flags' unknown bits cleared).
		got := oteltracing.Format(sc)
		if got.Traceparent[:3] != "00-" || got.Traceparent[2:52] != tp[2:52] {
			t.Fatalf("Format(Parse(%q)) = %q", tp, got.Traceparent)
		}
	})
}

// Issue #27: a provider's own traceparent header is a link of the
// webhook request's span, and that span is the context the event carries.
func TestIncomingTraceparentIsALink(t *testing.T) {
	tr, exp := recorder()
	s := intake.New(intake.WithLogger(quiet), intake.WithTracer(tr))
	hook := webhook.New("stripe", webhook.Stripe(secret), webhook.WithLogger(quiet), webhook.WithTracer(tr))
	s.Add(hook)
	got := make(chan event.Event, 1)
	s.Handle(func(ctx context.Context, e event.Event) error { got <- e; return nil })
	srv := httptest.NewServer(hook)
	defer srv.Close()
	stop := run(t, s)

	theirs := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	post(t, srv.URL, "evt_1", http.Header{"Traceparent": {theirs}})
	e := <-got
	stop()
	hooks := find(exp, "webhook stripe", tracing.AttrOutcome, "accepted")
	if len(hooks) != 1 {
		t.Fatalf("%d accepted webhook spans", len(hooks))
	}
	w := hooks[0]
	if w.SpanKind != trace.SpanKindServer || !linksTo(w, oteltracing.Parse(tracing.Link{Traceparent: theirs})) {
		t.Errorf("webhook span: kind %v, links %v", w.SpanKind, w.Links)
	}
	if w.Parent.IsValid() {
		t.Error("the provider's context is a link, not the parent")
	}
	if got := tracing.FromMeta(e.Meta); got != oteltracing.Format(w.SpanContext) {
		t.Errorf("the event carries %v, the request's span is %v", got, oteltracing.Format(w.SpanContext))
	}
	procs := find(exp, "process stripe", tracing.AttrOutcome, "ack")
	if len(procs) != 1 || !linksTo(procs[0], w.SpanContext) || procs[0].SpanKind != trace.SpanKindConsumer {
		t.Fatalf("process spans %v", procs)
	}
}

// Issue #27: a poll is the creation context of the events of its page.
func TestPollIsTheCreationContext(t *testing.T) {
	tr, exp := recorder()
	s := intake.New(intake.WithLogger(quiet), intake.WithTracer(tr))
	page := []event.Event{{ID: "1", Type: "t", Meta: map[string]string{"k": "v"}}}
	p := poller.New("api", poller.FetchFunc(func(ctx context.Context, cursor string) (poller.Page, error) {
		if cursor == "done" {
			return poller.Page{}, nil
		}
		return poller.Page{Events: page, Next: "done"}, nil
	}), poller.Every(time.Hour), poller.WithLogger(quiet), poller.WithTracer(tr))
	s.Add(p)
	got := make(chan event.Event, 1)
	s.Handle(func(ctx context.Context, e event.Event) error { got <- e; return nil })
	stop := run(t, s)
	e := <-got
	stop()
	if page[0].Meta[tracing.MetaTraceparent] != "" || e.Meta["k"] != "v" {
		t.Errorf("the fetch's Meta written to (%v), or the event's lost (%v)", page[0].Meta, e.Meta)
	}
	polls := find(exp, "poll api", tracing.AttrEvents, "1")
	procs := find(exp, "process api", tracing.AttrOutcome, "ack")
	if len(polls) != 1 || len(procs) != 1 || !linksTo(procs[0], polls[0].SpanContext) {
		t.Fatalf("poll spans %d, process spans %d, linked: %v", len(polls), len(procs), len(procs) == 1 && len(polls) == 1 && linksTo(procs[0], polls[0].SpanContext))
	}
	if polls[0].SpanKind != trace.SpanKindClient {
		t.Errorf("poll span kind %v", polls[0].SpanKind)
	}
}

// Issue #27: the relay feed keeps the context, so the consumer's delivery
// links to the webhook request at the public end (and its own poll of the
// feed does not replace it).
func TestRelayKeepsTheCreationContext(t *testing.T) {
	tr, exp := recorder()
	feed := &relay.MemoryFeed{}
	public := intake.New(intake.WithLogger(quiet), intake.WithTracer(tr))
	hook := webhook.New("stripe", webhook.Stripe(secret), webhook.WithLogger(quiet), webhook.WithTracer(tr))
	public.Add(hook)
	public.Handle(relay.New(feed, 0).Store, intake.WithName("relay"))
	mux := http.NewServeMux()
	mux.Handle("POST /hook", hook)
	mux.Handle("GET /feed", relay.NewHandler(feed, []string{"t0k3n"}, relay.WithLogger(quiet)))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	consumer := intake.New(intake.WithLogger(quiet), intake.WithTracer(tr))
	consumer.Add(poller.New("relay", relay.NewFetcher(srv.URL+"/feed", "t0k3n", relay.WithWait(time.Second)),
		poller.LongPoll(), poller.KeepSource(), poller.WithLogger(quiet), poller.WithTracer(tr)))
	got := make(chan event.Event, 1)
	consumer.Handle(func(ctx context.Context, e event.Event) error { got <- e; return nil }, intake.WithName("consumer"))
	stop := run(t, public, consumer)
	post(t, srv.URL+"/hook", "evt_1", nil)
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the consumer got nothing")
	}
	stop()
	hooks := find(exp, "webhook stripe", tracing.AttrOutcome, "accepted")
	procs := find(exp, "process stripe", tracing.AttrSubscription, "consumer")
	if len(hooks) != 1 || len(procs) != 1 {
		t.Fatalf("%d webhook spans, %d consumer process spans", len(hooks), len(procs))
	}
	if !linksTo(procs[0], hooks[0].SpanContext) {
		t.Errorf("the consumer's delivery links to %v, not the webhook request", procs[0].Links)
	}
}

// Issue #27: a webhook stored by one Postgres replica, whose handler
// there never finishes, is given back when that replica stops and
// handled by another after adoption: the delivery's span there links to
// the webhook request's span on the first.
func TestLinkSurvivesAdoptionByAnotherReplica(t *testing.T) {
	dsn := os.Getenv("INTAKE_POSTGRES_DSN")
	if dsn == "" {
		dsn = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no Postgres at %s: %v", dsn, err)
		}
		t.Skipf("no Postgres at %s (start one: pg_ctlcluster <version> main start; or set INTAKE_POSTGRES_DSN): %v", dsn, err)
	}
	prefix := fmt.Sprintf("otel%d_", rand.Uint32())
	t.Cleanup(func() {
		rows, _ := conn.Query(ctx, `SELECT tablename FROM pg_tables WHERE tablename LIKE $1`, prefix+"%")
		var names []string
		for rows.Next() {
			var n string
			_ = rows.Scan(&n)
			names = append(names, n)
		}
		for _, n := range names {
			_, _ = conn.Exec(ctx, `DROP TABLE IF EXISTS `+n+` CASCADE`)
		}
		_, _ = conn.Exec(ctx, `DROP SEQUENCE IF EXISTS `+prefix+`keys_seq`)
		conn.Close(ctx)
	})
	open := func() *postgres.Backend {
		b, err := postgres.Open(ctx, dsn, postgres.WithPrefix(prefix))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	tr, exp := recorder()

	// Replica A: the webhook; its handler holds the event until A stops.
	a := intake.New(intake.WithQueue(open()), intake.WithLogger(quiet), intake.WithTracer(tr), intake.WithDrainTimeout(50*time.Millisecond))
	hook := webhook.New("stripe", webhook.Stripe(secret), webhook.WithLogger(quiet), webhook.WithTracer(tr))
	a.Add(hook)
	holding := make(chan struct{}, 1)
	a.Handle(func(ctx context.Context, e event.Event) error {
		holding <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}, intake.WithName("handler"))
	srv := httptest.NewServer(hook)
	defer srv.Close()
	// Replica B: the same handler, which finishes.
	b := intake.New(intake.WithQueue(open()), intake.WithLogger(quiet), intake.WithTracer(tr))
	got := make(chan event.Event, 1)
	b.Handle(func(ctx context.Context, e event.Event) error { got <- e; return nil }, intake.WithName("handler"))

	stopA, stopB := run(t, a), run(t, b)
	post(t, srv.URL, "evt_adopted", nil)
	<-holding
	stopA() // A gives the event back; B adopts it
	select {
	case <-got:
	case <-time.After(15 * time.Second):
		t.Fatal("replica B never handled the event A gave back")
	}
	stopB()
	hooks := find(exp, "webhook stripe", tracing.AttrOutcome, "accepted")
	acked := find(exp, "process stripe", tracing.AttrOutcome, "ack")
	retried := find(exp, "process stripe", tracing.AttrOutcome, "retry")
	if len(hooks) != 1 || len(acked) != 1 || len(retried) != 1 {
		t.Fatalf("%d webhook spans, %d acked and %d retried process spans", len(hooks), len(acked), len(retried))
	}
	for _, p := range []tracetest.SpanStub{retried[0], acked[0]} {
		if !linksTo(p, hooks[0].SpanContext) {
			t.Errorf("process span (%v) links to %v, not the webhook request", p.Attributes, p.Links)
		}
	}
	var attempt int64
	for _, kv := range acked[0].Attributes {
		if kv.Key == tracing.AttrAttempt {
			attempt = kv.Value.AsInt64()
		}
	}
	if attempt != 1 { // given back, not orphaned: no attempt counted (see docs/design.md)
		t.Errorf("the adopted delivery is attempt %d, want 1", attempt)
	}
}

// OpenTelemetry's no-op provider starts nothing: the context comes back
// as it was, and the span records nothing.
func TestNoopProviderStartsNothing(t *testing.T) {
	tr := oteltracing.New(noop.NewTracerProvider())
	ctx := context.Background()
	got, span := tr.Start(ctx, "x", tracing.KindServer, tracing.Link{})
	if got != ctx || span.IsRecording() {
		t.Fatalf("the no-op provider made a context (%v) or a recording span", got != ctx)
	}
	span.End()
	if l := tr.Context(ctx); l != (tracing.Link{}) {
		t.Fatalf("Context of nothing = %v", l)
	}
}

// The core reuses the slice of a span's attributes (a worker's buffer, a
// webhook outcome's shared list): each span must record its own, and the
// adapter must keep none of the slice, nor change it.
func TestEachSpanRecordsItsOwnAttributes(t *testing.T) {
	tr, exp := recorder()
	s := intake.New(intake.WithLogger(quiet), intake.WithTracer(tr))
	hook := webhook.New("stripe", webhook.Stripe(secret), webhook.WithLogger(quiet), webhook.WithTracer(tr))
	s.Add(hook)
	const n = 20
	handled := make(chan struct{}, n)
	s.Handle(func(ctx context.Context, e event.Event) error {
		time.Sleep(2 * time.Millisecond) // the four workers overlap
		handled <- struct{}{}
		return nil
	}, intake.WithWorkers(4))
	srv := httptest.NewServer(hook)
	defer srv.Close()
	stop := run(t, s)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { post(t, srv.URL, fmt.Sprintf("evt_%d", i), nil) })
	}
	wg.Wait()
	for range n {
		<-handled
	}
	stop()
	for i := range n {
		id := fmt.Sprintf("evt_%d", i)
		procs := find(exp, "process stripe", tracing.AttrID, id)
		if len(procs) != 1 {
			t.Fatalf("%d process spans with id %s", len(procs), id)
		}
		hooks := find(exp, "webhook stripe", tracing.AttrOutcome, "accepted")
		if !slices.ContainsFunc(hooks, func(w tracetest.SpanStub) bool { return linksTo(procs[0], w.SpanContext) }) {
			t.Errorf("%s's process span links to no accepted request", id)
		}
	}

	_, span := tr.Start(context.Background(), "x", tracing.KindInternal, tracing.Link{})
	attrs := []tracing.Attr{tracing.String("a", "before"), tracing.Int("b", 1)}
	span.SetAttributes(attrs...)
	attrs[0], attrs[1] = tracing.String("a", "after"), tracing.Int("b", 2)
	span.End()
	if got := find(exp, "x", "a", "before"); len(got) != 1 || got[0].Attributes[1].Value.AsInt64() != 1 {
		t.Errorf("the span kept its caller's slice: %v", got)
	}
	if attrs[0].Str != "after" || attrs[1].Int != 2 {
		t.Errorf("the span changed its caller's slice: %v", attrs)
	}
}
