package reconcile

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/fetch"
	"github.com/intakehq/intake/poller"
	"github.com/intakehq/intake/webhook"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// stripeMock starts stripe-mock (a server made from Stripe's OpenAPI
// specification, which refuses a request whose parameters the
// specification does not allow) on a port of its own and returns its
// URL. Without it the test skips and says how to install it, except
// under CI=true, where it fails.
func stripeMock(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("stripe-mock")
	if err != nil {
		if gopath, gerr := exec.Command("go", "env", "GOPATH").Output(); gerr == nil {
			p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "stripe-mock")
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		msg := "stripe-mock not found; install it with `go install github.com/stripe/stripe-mock@v0.203.0`"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:0", "-https-addr", "127.0.0.1:0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`Listening for HTTP at address: (\S+)`)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	select {
	case a := <-addr:
		return "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatal("stripe-mock did not say where it listens")
		return ""
	}
}

// The sweep's request is one Stripe's specification accepts (stripe-mock
// refuses unknown or malformed parameters), and its answer decodes into
// events keyed by their evt_ id with the event object as payload.
func TestStripeEventsAgainstStripeMock(t *testing.T) {
	base := stripeMock(t)
	f := StripeEvents("sk_test_123", WithStripeBaseURL(base), WithTypes("charge.succeeded", "invoice.paid"), WithUndelivered())
	pg, err := f.Fetch(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(pg.Events) == 0 {
		t.Fatal("no event decoded")
	}
	e := pg.Events[0]
	if !strings.HasPrefix(e.ID, "evt_") || e.Type == "" || e.Time.IsZero() {
		t.Errorf("event %+v", e)
	}
	var obj map[string]any
	if err := json.Unmarshal(e.Payload, &obj); err != nil || obj["object"] != "event" || obj["id"] != e.ID {
		t.Errorf("payload %s is not the event object", e.Payload)
	}
	// stripe-mock answers a mid-sweep cursor too.
	if _, err := f.Fetch(context.Background(), "gte=1700000000&after="+e.ID); err != nil {
		t.Fatal(err)
	}
	// A parameter Stripe does not know is refused: the test above can fail.
	bad := poller.HTTP(nil, func(ctx context.Context, _ string) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/events?delivered=false", nil)
		req.Header.Set("Authorization", "Bearer sk_test_123")
		return req, err
	}, func(*http.Response, []byte) (poller.Page, error) { return poller.Page{}, nil })
	if _, err := bad.Fetch(context.Background(), ""); err == nil {
		t.Error("stripe-mock accepted an unknown parameter")
	}
}

// A thin event's object is fetched from Stripe (stripe-mock) with the
// API key.
func TestStripeObjectAgainstStripeMock(t *testing.T) {
	base := stripeMock(t)
	thin := event.Event{Source: "stripe", ID: "evt_thin", Payload: []byte(`{"id":"evt_thin","type":"v1.charge.updated","related_object":{"id":"ch_123","type":"charge","url":"/v1/charges/ch_123"}}`)}
	o, ok := StripeThin(thin)
	if !ok || o.ID != "ch_123" {
		t.Fatalf("StripeThin: %+v, %v", o, ok)
	}
	body, err := StripeObject("sk_test_123", WithStripeBaseURL(base))(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	var charge map[string]any
	if err := json.Unmarshal(body, &charge); err != nil || charge["object"] != "charge" {
		t.Errorf("fetched %.200s", body)
	}
	if _, err := StripeObject("sk_test_123", WithStripeBaseURL(base))(context.Background(), fetch.Object{ID: "x", URL: "https://evil.example/v1/charges/x"}); err == nil {
		t.Error("fetched a URL on another host with the API key")
	}
}

// stripeList serves /v1/events as Stripe does: newest first, created[gte]
// and starting_after honored, limit per page, has_more.
type stripeList struct {
	mu       sync.Mutex
	events   []map[string]any // newest first
	requests []string
}

func (s *stripeList) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, r.URL.RawQuery)
	if r.Header.Get("Authorization") != "Bearer sk_test_123" {
		http.Error(w, "no key", http.StatusUnauthorized)
		return
	}
	q := r.URL.Query()
	gte, _ := strconv.ParseInt(q.Get("created[gte]"), 10, 64)
	limit, _ := strconv.Atoi(q.Get("limit"))
	var page []map[string]any
	started := q.Get("starting_after") == ""
	more := false
	for _, e := range s.events {
		if e["created"].(int64) < gte {
			break
		}
		if !started {
			started = e["id"] == q.Get("starting_after")
			continue
		}
		if len(page) == limit {
			more = true
			break
		}
		page = append(page, e)
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": page, "has_more": more})
}

// A sweep pages through every event since the lookback, newest first,
// with starting_after; a restart mid-sweep resumes it; the poll after
// the last page starts a new sweep.
func TestStripeSweepPages(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	list := &stripeList{}
	for i := 249; i >= 0; i-- { // 250 events in the last 25 hours, and older ones
		list.events = append(list.events, map[string]any{"id": fmt.Sprintf("evt_%03d", i), "object": "event", "type": "charge.succeeded", "created": now.Add(-time.Duration(250-i) * 6 * time.Minute).Unix()})
	}
	list.events = append(list.events, map[string]any{"id": "evt_old", "object": "event", "type": "charge.succeeded", "created": now.Add(-100 * time.Hour).Unix()})
	srv := httptest.NewServer(list)
	defer srv.Close()
	f := StripeEvents("sk_test_123", WithStripeBaseURL(srv.URL), withStripeClock(func() time.Time { return now }))
	seen := map[string]bool{}
	cursor := ""
	var mid string
	for page := 0; ; page++ {
		pg, err := f.Fetch(context.Background(), cursor)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range pg.Events {
			if seen[e.ID] {
				t.Fatalf("%s twice in one sweep", e.ID)
			}
			seen[e.ID] = true
		}
		cursor = pg.Next
		if page == 1 {
			mid = cursor
		}
		if !pg.More {
			break
		}
	}
	if len(seen) != 250 || seen["evt_old"] {
		t.Fatalf("a sweep read %d events (evt_old: %v), want the 250 within the lookback", len(seen), seen["evt_old"])
	}
	// A restart with the checkpoint of page two reads from page three.
	pg, err := f.Fetch(context.Background(), mid)
	if err != nil {
		t.Fatal(err)
	}
	if len(pg.Events) != 50 || pg.Events[0].ID != "evt_049" {
		t.Fatalf("resumed with %d events from %s", len(pg.Events), pg.Events[0].ID)
	}
	// The cursor after the last page starts a new sweep.
	pg, err = f.Fetch(context.Background(), cursor)
	if err != nil {
		t.Fatal(err)
	}
	if len(pg.Events) != 100 || pg.Events[0].ID != "evt_249" {
		t.Fatalf("the next sweep started with %d events from %s", len(pg.Events), pg.Events[0].ID)
	}
}

// An event that arrives by Stripe's webhook and again by the sweep is
// handled once: both paths key it by its evt_ id under one source name.
func TestStripeSweepDedupesWithTheWebhook(t *testing.T) {
	now := time.Now()
	body := `{"id":"evt_both","object":"event","type":"invoice.paid","created":` + strconv.FormatInt(now.Unix(), 10) + `}`
	var obj map[string]any
	_ = json.Unmarshal([]byte(body), &obj)
	obj["created"] = now.Unix()
	list := &stripeList{events: []map[string]any{obj}}
	srv := httptest.NewServer(list)
	defer srv.Close()

	s := intake.New(intake.WithLogger(quiet))
	var mu sync.Mutex
	handled := map[string]int{}
	s.Handle(func(ctx context.Context, e event.Event) error {
		mu.Lock()
		handled[e.ID]++
		mu.Unlock()
		return nil
	})
	hook := webhook.New("stripe", webhook.Stripe("whsec_test"), webhook.WithLogger(quiet))
	p := poller.New("stripe", StripeEvents("sk_test_123", WithStripeBaseURL(srv.URL)), poller.Every(50*time.Millisecond), poller.WithLogger(quiet))
	s.Add(hook, p)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	hsrv := httptest.NewServer(hook)
	defer hsrv.Close()
	for {
		req, _ := http.NewRequest(http.MethodPost, hsrv.URL, strings.NewReader(body))
		req.Header = webhook.SignStripe("whsec_test", time.Now(), []byte(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			break
		}
		time.Sleep(5 * time.Millisecond) // the stream is starting
	}
	time.Sleep(300 * time.Millisecond) // several sweeps
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if handled["evt_both"] != 1 || p.Stats().Duplicates == 0 {
		t.Errorf("handled %d times (sweep duplicates %d), want once", handled["evt_both"], p.Stats().Duplicates)
	}
}
