package tracing_test

import (
	"testing"

	"github.com/intakehq/intake/tracing"
)

func TestMetaRoundTrip(t *testing.T) {
	var meta map[string]string
	tracing.ToMeta(&meta, tracing.Link{})
	if meta != nil {
		t.Fatalf("a zero link made Meta %v", meta)
	}
	l := tracing.Link{Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", Tracestate: "k=v"}
	tracing.ToMeta(&meta, l)
	if got := tracing.FromMeta(meta); got != l {
		t.Fatalf("FromMeta(ToMeta(%v)) = %v", l, got)
	}
	if got := tracing.FromMeta(nil); got != (tracing.Link{}) {
		t.Fatalf("FromMeta(nil) = %v", got)
	}
	if a := tracing.Int("n", 3); !a.IsInt || a.Int != 3 || a.Key != "n" {
		t.Fatalf("Int: %+v", a)
	}
}
