package main

import (
	"context"
	"fmt"
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
// defaults, on each server.
func jetStreamTargets(js *jetstreams, quiet *slog.Logger) []target {
	var ts []target
	for _, s := range js.servers {
		ts = append(ts, target{name: jetStreamTargetName(s.replicas, s.sync), setup: func() (http.Handler, *counter, func(), error) {
			nc, err := nats.Connect(s.c.URLs(), nats.MaxReconnects(-1))
			if err != nil {
				return nil, nil, nil, err
			}
			name := fmt.Sprintf("LT%d", time.Now().UnixNano())
			q, err := intakenats.NewQueue(context.Background(), nc, intakenats.WithName(name), intakenats.WithReplicas(s.replicas))
			if err != nil {
				nc.Close()
				return nil, nil, nil, err
			}
			c := newCounter()
			h, stop := intakeStream(q, c, quiet, false)
			return h, c, func() {
				stop()
				q.Close()
				nc.Close()
			}, nil
		}})
	}
	return ts
}
