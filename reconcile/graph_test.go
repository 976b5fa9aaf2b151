package reconcile

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/fetch"
	"github.com/intakehq/intake/webhook"
)

// Graph's basic notifications, batched two changes to a POST: each
// change's resource is fetched on demand (the first fetch of the batch
// fails once: the notification is retried), and the handler sees every
// changed object.
func TestGraphChangesFetched(t *testing.T) {
	var calls atomic.Int32
	graph := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer graph-token" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		if calls.Add(1) == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, `{"@odata.id":%q,"subject":"full"}`, strings.TrimPrefix(r.URL.Path, "/v1.0/"))
	}))
	defer graph.Close()
	f := fetch.New(func(event.Event) (fetch.Object, bool) { return fetch.Object{}, false },
		fetch.HTTP(graph.Client(), func(ctx context.Context, o fetch.Object) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.URL, nil)
			if err == nil {
				req.Header.Set("Authorization", "Bearer graph-token")
			}
			return req, err
		}))
	s := intake.New(intake.WithLogger(quiet))
	var mu sync.Mutex
	got := map[string]string{}
	s.Handle(func(ctx context.Context, e event.Event) error {
		for _, c := range webhook.GraphChanges(e) {
			o, ok := GraphObject(c, graph.URL+"/v1.0")
			if !ok {
				continue
			}
			body, err := f.Fetch(ctx, e.Source, o, e.Received)
			if err != nil {
				return err
			}
			mu.Lock()
			got[o.ID] = string(body)
			mu.Unlock()
		}
		return nil
	}, intake.WithRetryBackoff(time.Millisecond, 10*time.Millisecond))
	hook := webhook.New("graph", webhook.MicrosoftGraph("secretClientValue"), webhook.WithLogger(quiet))
	s.Add(hook)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	body := `{"value":[
		{"subscriptionId":"7f105c7d","clientState":"secretClientValue","changeType":"created","resource":"Users/u1/Messages/m1","tenantId":"84bd8158"},
		{"subscriptionId":"7f105c7d","clientState":"secretClientValue","changeType":"updated","resource":"Users/u1/Messages/m2","tenantId":"84bd8158"}]}`
	srv := httptest.NewServer(hook)
	defer srv.Close()
	for {
		resp, err := http.Post(srv.URL, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusAccepted {
			break
		}
		time.Sleep(time.Millisecond)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	for _, r := range []string{"Users/u1/Messages/m1", "Users/u1/Messages/m2"} {
		if want := fmt.Sprintf(`{"@odata.id":%q,"subject":"full"}`, r); got[r] != want {
			t.Errorf("%s: got %q, want %q", r, got[r], want)
		}
	}
	if changes := webhook.GraphChanges(event.Event{Payload: []byte(body)}); len(changes) != 2 || changes[0].Type != "created" || changes[0].ID == changes[1].ID {
		t.Errorf("changes %+v", changes)
	}
}

// A Graph change names its object's version (resourceData's @odata.etag)
// and a deletion names an object that is gone: it is passed on unfetched
// and marked, not fetched and retried until dead. Issue #34, item 4.
func TestGraphObjectVersionAndDeletion(t *testing.T) {
	const base = "https://graph.example/v1.0"
	for _, tc := range []struct {
		name, change string
		want         fetch.Object
		ok           bool
	}{
		{"updated with an etag",
			`{"changeType":"updated","resource":"Users/u1/Messages/m1","resourceData":{"@odata.type":"#Microsoft.Graph.Message","@odata.id":"Users/u1/Messages/m1","@odata.etag":"W/\"CQAAABYAAAA\"","id":"m1"}}`,
			fetch.Object{ID: "Users/u1/Messages/m1", Version: `W/"CQAAABYAAAA"`, URL: base + "/Users/u1/Messages/m1"}, true},
		{"created without resourceData",
			`{"changeType":"created","resource":"/Users/u1/Messages/m2"}`,
			fetch.Object{ID: "Users/u1/Messages/m2", URL: base + "/Users/u1/Messages/m2"}, true},
		{"deleted",
			`{"changeType":"deleted","resource":"Users/u1/Messages/m3","resourceData":{"id":"m3"}}`,
			fetch.Object{ID: "Users/u1/Messages/m3", URL: base + "/Users/u1/Messages/m3", Gone: true}, true},
		{"lifecycle", `{"lifecycleEvent":"missed","subscriptionId":"s"}`, fetch.Object{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := GraphObject(event.Event{Payload: []byte(tc.change)}, base)
			if ok != tc.ok || got != tc.want {
				t.Errorf("GraphObject = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}

	// Through a Fetcher: the deletion reaches the handler unfetched.
	f := fetch.New(func(e event.Event) (fetch.Object, bool) { return GraphObject(e, base) },
		func(context.Context, fetch.Object) ([]byte, error) {
			t.Error("fetched a deleted object")
			return nil, fmt.Errorf("404")
		})
	del := event.Event{Source: "graph", ID: "c1", Payload: []byte(`{"changeType":"deleted","resource":"Users/u1/Messages/m3"}`)}
	var seen event.Event
	if err := f.Handle(func(_ context.Context, e event.Event) error { seen = e; return nil })(context.Background(), del); err != nil {
		t.Fatal(err)
	}
	if seen.Meta[fetch.MetaGone] != "true" || string(seen.Payload) != string(del.Payload) {
		t.Errorf("the deletion reached the handler as %+v", seen)
	}
}
