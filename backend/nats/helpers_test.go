package nats_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	intakenats "github.com/intakehq/intake/backend/nats"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func url() string {
	if u := os.Getenv("INTAKE_NATS_URL"); u != "" {
		return u
	}
	return "nats://127.0.0.1:4222"
}

// skipOrFail skips the test with msg, or fails it under CI=true.
func skipOrFail(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// testConn connects to the shared test server (JetStream on). When none
// answers, the test skips with how to start one, except under CI=true,
// where it fails.
func testConn(t testing.TB) *nats.Conn {
	t.Helper()
	return connect(t, url(), "NATS with JetStream not reachable at "+url()+
		"; start one with nats-server -a 127.0.0.1 -p 4222 -js -sd /tmp/nats-js &, or set INTAKE_NATS_URL")
}

func connect(t testing.TB, url, help string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.Timeout(3*time.Second), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		skipOrFail(t, help+": "+err.Error())
	}
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		nc.Close()
		skipOrFail(t, help+": JetStream: "+err.Error())
	}
	t.Cleanup(nc.Close)
	return nc
}

// testName is a queue name of the test's own; its streams are deleted
// when the test ends.
func testName(t testing.TB, nc *nats.Conn) string {
	t.Helper()
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := "T" + strings.ToUpper(hex.EncodeToString(b[:]))
	t.Cleanup(func() {
		js, _ := jetstream.New(nc)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, s := range []string{name, name + "_DONE", name + "_LIVE", name + "_FEED", "KV_intake_" + name + "_poll"} {
			_ = js.DeleteStream(ctx, s)
		}
	})
	return name
}

// newQueue opens a holder on nc under name (a 1-s heartbeat unless opts
// say otherwise), closed when the test ends.
func newQueue(t testing.TB, nc *nats.Conn, name string, opts ...intakenats.Option) *intakenats.Queue {
	t.Helper()
	q := openQueue(t, nc, append([]intakenats.Option{intakenats.WithName(name), intakenats.WithHeartbeat(time.Second)}, opts...)...)
	t.Cleanup(func() { q.Close() })
	return q
}

// openQueue opens a holder, trying again for up to 30 s: a cluster that
// has just formed or restarted refuses streams for a while ("no suitable
// peers for placement, peer offline" under load, until each stream has
// a leader).
func openQueue(t testing.TB, nc *nats.Conn, opts ...intakenats.Option) *intakenats.Queue {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		q, err := intakenats.NewQueue(context.Background(), nc, opts...)
		if err == nil {
			return q
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
	}
}
