package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	intakenats "github.com/intakehq/intake/backend/nats"
	"github.com/intakehq/intake/backend/nats/natstest"
)

// jetstreams are the NATS servers of the JetStream targets, started by
// the load test itself so that all run the same nats-server (natstest's
// version): one node for R1 and a three-node cluster for R3, each with
// the setting durability needs (sync_interval: always: every write on
// disk before it is acknowledged) and with the server's default (synced
// every two minutes).
type jetstreams struct {
	servers []jsServer
	dir     string
}

type jsServer struct {
	c        *natstest.Cluster
	replicas int
	sync     string
}

// startJetStreams starts them; an error leaves the JetStream targets out.
func startJetStreams() (*jetstreams, error) {
	bin, err := natstest.Binary()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "intake-loadtest-nats-")
	if err != nil {
		return nil, err
	}
	js := &jetstreams{dir: dir}
	for _, sync := range []string{"always", "2m"} {
		for _, n := range []int{1, 3} {
			d := filepath.Join(dir, fmt.Sprintf("r%d-%s", n, sync))
			if err := os.Mkdir(d, 0o700); err != nil {
				js.close()
				return nil, err
			}
			c, err := natstest.Start(bin, d, n, natstest.SyncInterval(sync))
			if err != nil {
				js.close()
				return nil, err
			}
			js.servers = append(js.servers, jsServer{c, n, sync})
		}
	}
	return js, nil
}

func (js *jetstreams) close() {
	for _, s := range js.servers {
		s.c.Stop()
	}
	os.RemoveAll(js.dir)
}

// jetStreamTargetName is the name of the target on s.
func jetStreamTargetName(replicas int, sync string) string {
	name := fmt.Sprintf("intake, JetStream queue, R%d", replicas)
	if sync != "always" {
		name += ", sync " + sync
	}
	return name
}

// jetStreamTargets: intake on a JetStream queue, one replica with the
// defaults, on each server; and, with durable settings, the same load
// spread over four queue names (four intake streams, each with streams
// of its own on the server) by the delivery's ID, as an app shards by
// source or tenant: "scales by queue name", measured on one machine.
func jetStreamTargets(js *jetstreams, quiet *slog.Logger) []target {
	var ts []target
	for _, s := range js.servers {
		ts = append(ts, target{name: jetStreamTargetName(s.replicas, s.sync), setup: jetStreamSetup(s, 1, quiet)})
	}
	for _, s := range js.servers {
		if s.sync == "always" {
			name := fmt.Sprintf("%s, %d queue names", jetStreamTargetName(s.replicas, s.sync), shards)
			ts = append(ts, target{name: name, setup: jetStreamSetup(s, shards, quiet)})
		}
	}
	return ts
}

// shards is how many queue names the sharded JetStream targets use.
const shards = 4

// jetStreamSetup starts n intake streams on s, each on a queue of its own
// name, behind a handler that sends each delivery to one of them by its
// ID (so that a duplicate meets its first copy).
func jetStreamSetup(s jsServer, n int, quiet *slog.Logger) func() (http.Handler, *counter, func(), error) {
	return func() (http.Handler, *counter, func(), error) {
		nc, err := nats.Connect(s.c.URLs(), nats.MaxReconnects(-1))
		if err != nil {
			return nil, nil, nil, err
		}
		c := newCounter()
		var hs []http.Handler
		var stops []func()
		stop := func() {
			for _, f := range stops {
				f()
			}
			nc.Close()
		}
		base := fmt.Sprintf("LT%d", time.Now().UnixNano())
		for i := range n {
			q, err := intakenats.NewQueue(context.Background(), nc, intakenats.WithName(fmt.Sprintf("%s_%d", base, i)), intakenats.WithReplicas(s.replicas))
			if err != nil {
				stop()
				return nil, nil, nil, err
			}
			h, sstop := intakeStream(q, c, quiet, false)
			hs = append(hs, h)
			stops = append(stops, func() { sstop(); q.Close() })
		}
		if n == 1 {
			return hs[0], c, stop, nil
		}
		return byDelivery(hs), c, stop, nil
	}
}

// byDelivery sends each request to one of hs by its delivery ID.
func byDelivery(hs []http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := fnv.New32a()
		h.Write([]byte(r.Header.Get("X-GitHub-Delivery")))
		hs[h.Sum32()%uint32(len(hs))].ServeHTTP(w, r)
	})
}
