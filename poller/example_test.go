package poller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/poller"
)

// Poll a JSON list API with the HTTP helper: GET /events?after=<cursor>
// answers the events after the cursor, and the last id is the next cursor.
func ExampleHTTP() {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("after") == "" {
			_, _ = w.Write([]byte(`[{"id":"evt_1","type":"order.paid"},{"id":"evt_2","type":"order.shipped"}]`))
			return
		}
		_, _ = w.Write([]byte(`[]`))
	}))
	defer api.Close()

	fetch := poller.HTTP(api.Client(),
		func(ctx context.Context, cursor string) (*http.Request, error) {
			return http.NewRequestWithContext(ctx, http.MethodGet, api.URL+"/events?after="+cursor, nil)
		},
		func(resp *http.Response, body []byte) ([]event.Event, string, error) {
			var items []struct{ ID, Type string }
			if err := json.Unmarshal(body, &items); err != nil {
				return nil, "", err
			}
			events := make([]event.Event, len(items))
			for i, it := range items {
				events[i] = event.Event{ID: it.ID, Type: it.Type}
			}
			if len(items) == 0 {
				return nil, "", nil // keep the cursor
			}
			return events, items[len(items)-1].ID, nil
		})

	p := poller.New("shop", fetch, poller.Every(10*time.Millisecond), poller.WithLogger(quiet))
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan event.Event, 2)
	done := make(chan error)
	go func() {
		done <- p.Run(ctx, event.SinkFunc(func(_ context.Context, e event.Event) error {
			got <- e
			return nil
		}))
	}()
	for range 2 {
		e := <-got
		fmt.Println(e.Source, e.ID, e.Type, e.Via)
	}
	cancel()
	fmt.Println(<-done)
	// Output:
	// shop evt_1 order.paid poll
	// shop evt_2 order.shipped poll
	// <nil>
}
