package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats.go"

	intakenats "github.com/intakehq/intake/backend/nats"
	"github.com/intakehq/intake/backend/nats/natstest"
)

// jetstreams are the NATS servers of the JetStream targets, started by
// the load test itself so that both run the same nats-server (natstest's
// version) with the setting durability needs (sync_interval: always):
// one node for R1 and a three-node cluster for R3, on this machine.
type jetstreams struct {
	r1, r3 *natstest.Cluster
	dir    string
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
	if err := os.Mkdir(dir+"/r1", 0o700); err == nil {
		js.r1, err = natstest.Start(bin, dir+"/r1", 1)
	}
	if err == nil {
		if err = os.Mkdir(dir+"/r3", 0o700); err == nil {
			js.r3, err = natstest.Start(bin, dir+"/r3", 3)
		}
	}
	if err != nil {
		js.close()
		return nil, err
	}
	return js, nil
}

func (js *jetstreams) close() {
	if js.r1 != nil {
		js.r1.Stop()
	}
	if js.r3 != nil {
		js.r3.Stop()
	}
	os.RemoveAll(js.dir)
}

// jetStreamTargets: intake on a JetStream queue, R1 on one node and R3 on
// the cluster, each one replica with the defaults.
func jetStreamTargets(js *jetstreams, quiet *slog.Logger) []target {
	var ts []target
	for _, v := range []struct {
		c        *natstest.Cluster
		replicas int
	}{{js.r1, 1}, {js.r3, 3}} {
		ts = append(ts, target{name: fmt.Sprintf("intake, JetStream queue, R%d", v.replicas), setup: func() (http.Handler, *counter, func(), error) {
			nc, err := nats.Connect(v.c.URLs(), nats.MaxReconnects(-1))
			if err != nil {
				return nil, nil, nil, err
			}
			name := fmt.Sprintf("LT%d", time.Now().UnixNano())
			q, err := intakenats.NewQueue(context.Background(), nc, intakenats.WithName(name), intakenats.WithReplicas(v.replicas))
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
