package poller_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
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
		func(resp *http.Response, body []byte) (poller.Page, error) {
			var items []struct{ ID, Type string }
			if err := json.Unmarshal(body, &items); err != nil {
				return poller.Page{}, err
			}
			var pg poller.Page
			for _, it := range items {
				pg.Events = append(pg.Events, event.Event{ID: it.ID, Type: it.Type})
			}
			if len(items) > 0 {
				pg.Next = items[len(items)-1].ID // else "": keep the cursor
			}
			return pg, nil
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

// A fetch of your own returns a Page: the events, the cursor to resume
// from, whether another page is ready now, and any delay the API asked
// for. The poller saves Next only once every event of the page is stored.
func ExampleFetchFunc() {
	feed := []string{"a", "b", "c", "d", "e"} // an API that serves two items a page
	fetch := poller.FetchFunc(func(ctx context.Context, cursor string) (poller.Page, error) {
		start, _ := strconv.Atoi(cursor)
		end := min(start+2, len(feed))
		var pg poller.Page
		for _, id := range feed[start:end] {
			pg.Events = append(pg.Events, event.Event{ID: id, Type: "item.created"})
		}
		pg.Next = strconv.Itoa(end)
		pg.More = end < len(feed) // fetch the next page at once
		return pg, nil
	})
	cp := &poller.MemoryCheckpoint{}
	p := poller.New("feed", fetch, poller.Every(time.Hour), poller.WithCheckpoint(cp), poller.WithLogger(quiet))
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan string, len(feed))
	done := make(chan error)
	go func() {
		done <- p.Run(ctx, event.SinkFunc(func(_ context.Context, e event.Event) error {
			got <- e.ID
			return nil
		}))
	}()
	for range feed {
		fmt.Print(<-got, " ")
	}
	cancel()
	<-done
	cursor, _ := cp.Load(context.Background(), "feed")
	fmt.Println("| cursor", cursor, "| polls", p.Stats().Polls)
	// Output: a b c d e | cursor 5 | polls 3
}
