package event_test

import (
	"testing"
	"time"

	"github.com/intakehq/intake/event"
)

func TestKeyIsUnambiguous(t *testing.T) {
	pairs := [][2]string{{"a:b", "c"}, {"a", "b:c"}, {"", "a:b:c"}, {"a:b:c", ""}}
	seen := map[string][2]string{}
	for _, p := range pairs {
		k := event.Key(p[0], p[1])
		if q, dup := seen[k]; dup {
			t.Fatalf("Key(%q) == Key(%q) == %q", p, q, k)
		}
		seen[k] = p
	}
}

func TestViaString(t *testing.T) {
	for v, want := range map[event.Via]string{event.Webhook: "webhook", event.Poll: "poll", 0: "unknown"} {
		if got := v.String(); got != want {
			t.Errorf("Via(%d).String() = %q, want %q", v, got, want)
		}
	}
}

func TestContentID(t *testing.T) {
	at := time.Unix(1_700_000_000, 0)
	base := event.Event{Type: "a", Payload: []byte("x")}
	distinct := []event.Event{
		{},
		{Type: "a"},
		{Type: "b"},
		base,
		{Type: "a", Payload: []byte("y")},
		{Type: "a", Payload: []byte("x"), Time: at},
		{Type: "a", Payload: []byte("x"), Meta: map[string]string{"k": "v"}},
		{Type: "a", Payload: []byte("x"), Meta: map[string]string{"k": "w"}},
	}
	seen := map[string]int{}
	for i, e := range distinct {
		id := event.ContentID(e)
		if len(id) != len("sha256:")+32 {
			t.Fatalf("id %q", id)
		}
		if j, ok := seen[id]; ok {
			t.Errorf("events %d and %d share id %s", j, i, id)
		}
		seen[id] = i
	}
	// No payload is no payload, nil or empty; the same for meta.
	if event.ContentID(event.Event{Type: "a", Payload: []byte{}, Meta: map[string]string{}}) != event.ContentID(event.Event{Type: "a"}) {
		t.Error("an empty payload or meta changed the content id")
	}
	// Arrival does not count.
	same := base
	same.Source, same.Via, same.Received, same.ID = "other", event.Poll, time.Now(), "ignored"
	if event.ContentID(same) != event.ContentID(base) {
		t.Error("source, via, received or id changed the content id")
	}
}
