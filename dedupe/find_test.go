package dedupe_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
)

// pages is a Lister over records in Seq order, answering Filter as a
// backend does.
type pages []dedupe.Record

func (p pages) List(_ context.Context, f dedupe.Filter) ([]dedupe.Record, error) {
	var out []dedupe.Record
	for _, r := range p {
		if r.Seq > f.After && (f.Source == "" || r.Event.Source == f.Source) && len(out) < f.Max() {
			out = append(out, r)
		}
	}
	return out, nil
}

// Issue #34, item 13: an event is found by its source and provider id
// though its key is its body's hash, across pages.
func TestFindByProviderID(t *testing.T) {
	var recs pages
	for i := range 2500 {
		e := event.Event{Source: "github", ID: fmt.Sprintf("d-%d", i), Meta: map[string]string{event.MetaDedupe: fmt.Sprintf("body:%04x", i)}}
		recs = append(recs, dedupe.Record{Key: e.Key(), Seq: int64(i + 1), Event: e})
	}
	recs = append(recs, dedupe.Record{Key: "x", Seq: 2501, Event: event.Event{Source: "stripe", ID: "d-2100"}})
	got, err := dedupe.Find(context.Background(), recs, "github", "d-2100")
	if err != nil || len(got) != 1 || got[0].Seq != 2101 || got[0].Key == event.Key("github", "d-2100") {
		t.Fatalf("Find = %+v, %v", got, err)
	}
	if got, _ := dedupe.Find(context.Background(), recs, "", "d-2100"); len(got) != 2 {
		t.Errorf("any source: %d records, want 2", len(got))
	}
	if got, _ := dedupe.Find(context.Background(), recs, "github", "nope"); len(got) != 0 {
		t.Errorf("an unknown id: %+v", got)
	}
	if _, err := dedupe.Find(context.Background(), failing{}, "github", "d-1"); err == nil {
		t.Error("a failing List: no error")
	}
}

type failing struct{}

func (failing) List(context.Context, dedupe.Filter) ([]dedupe.Record, error) {
	return nil, errors.New("down")
}
