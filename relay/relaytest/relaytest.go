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
	first, err := f.Read(ctx, floor, 4)
	if err != nil || len(first) != 4 {
		t.Fatalf("Read: %d items, %v", len(first), err)
	}
	rest, err := f.Read(ctx, first[3].Cursor, 100)
	if err != nil || len(rest) != 3 {
		t.Fatalf("Read after %d: %d items, %v", first[3].Cursor, len(rest), err)
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
	if none, err := f.Read(ctx, all[6].Cursor, 10); err != nil || len(none) != 0 {
		t.Fatalf("Read past the end: %d items, %v", len(none), err)
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
	old, _ := f.Read(ctx, 0, 10)
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
	kept, _ := f.Read(ctx, floor, 10)
	if len(kept) != 1 || kept[0].Event.ID != "new" {
		t.Fatalf("kept %v", kept)
	}
}
