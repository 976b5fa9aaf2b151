// Package relaytest is the conformance suite every [relay.Feed] passes:
// the memory feed, and each backend's against a real server.
package relaytest

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/relay"
)

// RunFeed runs the suite; newFeed returns an empty feed for each subtest.
func RunFeed(t *testing.T, newFeed func(t *testing.T) relay.Feed) {
	t.Helper()
	t.Run("AppendReadInOrder", func(t *testing.T) { appendRead(t, newFeed(t)) })
	t.Run("ChangedFiresOnAppend", func(t *testing.T) { changed(t, newFeed(t)) })
	t.Run("TrimRaisesTheFloor", func(t *testing.T) { trim(t, newFeed(t)) })
}

func appendRead(t *testing.T, f relay.Feed) {
	ctx := context.Background()
	var want []event.Event
	for i := range 7 {
		e := event.Event{ID: fmt.Sprint("e", i), Source: "s\x00", Type: "t", Via: event.Webhook,
			Time: time.Unix(1_700_000_000, int64(i)), Payload: []byte("{\n \"n\": 1 }\xff"),
			Meta: map[string]string{"header:X-Sig": "v1,abc"}}
		want = append(want, e)
		if err := f.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	floor, err := f.Floor(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := readAll(t, f, floor, 4)
	rest := readAll(t, f, first[3].Cursor, 3)
	if more, err := f.Read(ctx, rest[2].Cursor, 100); err != nil || len(more) != 0 {
		t.Fatalf("Read after the seventh: %d items, %v", len(more), err)
	}
	all := append(first, rest...)
	for i, it := range all {
		if i > 0 && it.Cursor <= all[i-1].Cursor {
			t.Fatalf("cursors not increasing: %d after %d", it.Cursor, all[i-1].Cursor)
		}
		got, w := it.Event, want[i]
		if !got.Time.Equal(w.Time) {
			t.Fatalf("item %d time %v, want %v", i, got.Time, w.Time)
		}
		got.Time, w.Time = time.Time{}, time.Time{}
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("item %d:\n%#v\nwant\n%#v", i, got, w)
		}
	}
}

func changed(t *testing.T, f relay.Feed) {
	ch := f.Changed()
	select {
	case <-ch:
		t.Fatal("Changed fired before an append")
	default:
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		_ = f.Append(context.Background(), event.Event{ID: "x", Source: "s"})
	}()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("Changed did not fire after an append")
	}
}

func trim(t *testing.T, f relay.Feed) {
	ctx := context.Background()
	for i := range 3 {
		if err := f.Append(ctx, event.Event{ID: fmt.Sprint("old", i), Source: "s"}); err != nil {
			t.Fatal(err)
		}
	}
	old := readAll(t, f, 0, 3)
	time.Sleep(10 * time.Millisecond)
	cut := time.Now()
	time.Sleep(10 * time.Millisecond)
	if err := f.Append(ctx, event.Event{ID: "new", Source: "s"}); err != nil {
		t.Fatal(err)
	}
	if err := f.Trim(ctx, cut); err != nil {
		t.Fatal(err)
	}
	floor, err := f.Floor(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if floor < old[2].Cursor {
		t.Fatalf("floor %d after trimming up to cursor %d", floor, old[2].Cursor)
	}
	kept, err := f.Read(ctx, floor, 10)
	if err != nil {
		t.Fatalf("Read after Trim: %v", err)
	}
	if len(kept) != 1 || kept[0].Event.ID != "new" {
		t.Fatalf("kept %v", kept)
	}
}

// readAll reads after cursor until it has want items: Read may return a
// short page (a cluster's replica behind by a few), and the reader reads
// on from the last cursor, as the relay's consumers do. It fails the test
// (a kit never panics) if they are not there within 30 s.
func readAll(t *testing.T, f relay.Feed, after int64, want int) []relay.Item {
	t.Helper()
	var got []relay.Item
	deadline := time.Now().Add(30 * time.Second)
	for len(got) < want {
		page, err := f.Read(context.Background(), after, want-len(got))
		if err == nil && len(page) > 0 {
			got = append(got, page...)
			after = page[len(page)-1].Cursor
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("read %d of the %d items appended after cursor %d within 30 s (last error: %v)", len(got), want, after, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return got
}
