package event_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/intakehq/intake/event"
)

func TestBinaryRoundTrip(t *testing.T) {
	when := time.Date(2026, 11, 29, 17, 0, 0, 123456789, time.UTC)
	tests := []struct {
		name string
		e    event.Event
	}{
		{"zero", event.Event{}},
		{"plain", event.Event{ID: "evt_1", Source: "stripe", Type: "charge.succeeded", Via: event.Webhook,
			Time: when, Received: when.Add(time.Second), Payload: []byte(`{"id":"evt_1"}`),
			Meta: map[string]string{"content-type": "application/json"}}},
		{"nil payload, empty meta", event.Event{ID: "1", Source: "p", Meta: map[string]string{}}},
		{"empty payload", event.Event{ID: "1", Source: "p", Payload: []byte{}}},
		{"hostile bytes", event.Event{ID: "a\x00b\xff", Source: "\xc3\x28", Type: "\xed\xa0\x80", Via: event.Poll,
			Payload: []byte("\x00\xff"), Meta: map[string]string{"\xff": "\x00", "": ""}}},
		{"times far away", event.Event{ID: "1", Source: "p", Time: time.Unix(-62135596799, 1), Received: time.Unix(1<<40, 999999999)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.e.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			var got event.Event
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if !equal(got, tt.e) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", got, tt.e)
			}
		})
	}
}

func equal(a, b event.Event) bool {
	if !a.Time.Equal(b.Time) || !a.Received.Equal(b.Received) || a.Time.IsZero() != b.Time.IsZero() {
		return false
	}
	a.Time, b.Time, a.Received, b.Received = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	return reflect.DeepEqual(a, b)
}

func TestUnmarshalBinaryRejects(t *testing.T) {
	good, _ := event.Event{ID: "1", Source: "p", Payload: []byte("x"), Meta: map[string]string{"k": "v"}}.MarshalBinary()
	tests := map[string][]byte{
		"empty":         nil,
		"version":       append([]byte{9}, good[1:]...),
		"truncated":     good[:len(good)-1],
		"trailing":      append(append([]byte{}, good...), 0),
		"huge length":   {1, 1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"bad time flag": {1, 1, 0, 0, 0, 7},
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			e := event.Event{ID: "unchanged"}
			err := e.UnmarshalBinary(b)
			if !errors.Is(err, event.ErrBadEncoding) {
				t.Fatalf("err = %v, want ErrBadEncoding", err)
			}
			if e.ID != "unchanged" {
				t.Fatal("event changed on error")
			}
		})
	}
}

// FuzzUnmarshalBinary: any input either fails with ErrBadEncoding or
// decodes to an event that encodes and decodes to itself.
func FuzzUnmarshalBinary(f *testing.F) {
	for _, e := range []event.Event{{}, {ID: "1", Source: "p", Payload: []byte("x"), Meta: map[string]string{"a": "b"}, Time: time.Unix(1, 2)}} {
		b, _ := e.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var e event.Event
		if err := e.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, event.ErrBadEncoding) {
				t.Fatalf("error %v does not wrap ErrBadEncoding", err)
			}
			return
		}
		again, _ := e.MarshalBinary()
		var e2 event.Event
		if err := e2.UnmarshalBinary(again); err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		if !equal(e, e2) {
			t.Fatalf("not stable:\n%#v\n%#v", e, e2)
		}
	})
}

// FuzzBinaryRoundTrip: any event survives the encoding byte-exact.
func FuzzBinaryRoundTrip(f *testing.F) {
	f.Add("evt_1", "stripe", "charge", []byte(`{}`), "k", "v", int64(1700000000), uint8(1))
	f.Add("a\x00", "\xff", "", []byte(nil), "\x00", "\xff", int64(-1), uint8(0))
	f.Fuzz(func(t *testing.T, id, source, typ string, payload []byte, mk, mv string, sec int64, via uint8) {
		e := event.Event{ID: id, Source: source, Type: typ, Via: event.Via(via), Payload: payload,
			Meta: map[string]string{mk: mv}, Time: time.Unix(sec, 5)}
		b, _ := e.MarshalBinary()
		var got event.Event
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if !equal(got, e) {
			t.Fatalf("round trip:\n got %#v\nwant %#v", got, e)
		}
	})
}
