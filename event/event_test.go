package event_test

import (
	"testing"

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
