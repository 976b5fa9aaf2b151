package nats

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// sharedQueue connects to the shared test server and returns a function
// that opens a holder on a queue name of the test's own (its streams
// deleted when the test ends). Without a server the test skips with how
// to start one, or fails under CI=true.
func sharedQueue(t *testing.T, opts ...Option) func() *Queue {
	t.Helper()
	url := os.Getenv("INTAKE_NATS_URL")
	if url == "" {
		url = "nats://127.0.0.1:4222"
	}
	nc, err := nats.Connect(url, nats.Timeout(3*time.Second))
	if err != nil {
		msg := "NATS not reachable at " + url + ": " + err.Error() + "; start one with nats-server -a 127.0.0.1 -p 4222 -js -sd /tmp/nats-js &, or set INTAKE_NATS_URL"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	ctx := context.Background()
	name := fmt.Sprintf("INTERNAL%d", rand.Uint32())
	t.Cleanup(func() {
		js, _ := jetstream.New(nc)
		for _, s := range []string{name, name + "_DONE", name + "_LIVE"} {
			_ = js.DeleteStream(ctx, s)
		}
		nc.Close()
	})
	return func() *Queue {
		q, err := NewQueue(ctx, nc, append([]Option{WithName(name)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		return q
	}
}
