// Package natstest runs nats-server processes of a test's own — one node
// or a cluster routed on loopback, each with JetStream syncing every
// write to disk (sync_interval: always) — that the test can SIGKILL and
// restart. The backend's tests and the load test use it.
package natstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Version is the nats-server that [Binary] builds: a current release,
// not whatever a distribution installed.
const Version = "v2.15.3"

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary returns the path of a nats-server: the one INTAKE_NATS_SERVER
// names, or [Version] built once with go install into the user's cache
// directory (about a minute, the first time on a machine; the module
// proxy serves it).
func Binary() (string, error) {
	binOnce.Do(func() {
		if p := os.Getenv("INTAKE_NATS_SERVER"); p != "" {
			binPath = p
			return
		}
		dir, err := os.UserCacheDir()
		if err != nil {
			binErr = err
			return
		}
		dir = filepath.Join(dir, "intake", "nats-server-"+Version)
		binPath = filepath.Join(dir, "nats-server")
		if _, err := os.Stat(binPath); err == nil {
			return
		}
		cmd := exec.Command("go", "install", "github.com/nats-io/nats-server/v2@"+Version)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOWORK=off", "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go install nats-server %s: %v: %s", Version, err, out)
		}
	})
	return binPath, binErr
}

// Node is one nats-server of a [Cluster].
type Node struct {
	Name string // n1, n2, …: its server_name
	URL  string // nats://127.0.0.1:port
	conf string
	cmd  *exec.Cmd
}

// Cluster is n nats-server processes in dir, routed on loopback when n
// is more than one.
type Cluster struct {
	Nodes []*Node
	bin   string
	mu    sync.Mutex
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Option changes how [Start] configures the nodes.
type Option func(*settings)

type settings struct{ sync string }

// SyncInterval sets JetStream's sync_interval ("always" by default; "2m"
// is the server's own default, which acknowledges writes before they are
// on disk).
func SyncInterval(v string) Option { return func(s *settings) { s.sync = v } }

// Start starts n nodes of bin with their files in dir and waits up to 30
// seconds until JetStream answers through each. Stop kills them. The
// loopback ports are free when chosen, but another process can take one
// before a node binds it: then the nodes start again, on new ports, up to
// three times.
func Start(bin, dir string, n int, opts ...Option) (*Cluster, error) {
	set := settings{sync: "always"}
	for _, o := range opts {
		o(&set)
	}
	var err error
	for try := range 3 {
		d := dir
		if try > 0 { // a failed start may have left state naming the old ports
			d = filepath.Join(dir, fmt.Sprint("retry", try))
			if err := os.MkdirAll(d, 0o700); err != nil {
				return nil, err
			}
		}
		var c *Cluster
		if c, err = start(bin, d, n, set); err == nil {
			return c, nil
		}
	}
	return nil, err
}

func start(bin, dir string, n int, set settings) (*Cluster, error) {
	c := &Cluster{bin: bin}
	ports, routes := make([]int, n), make([]int, n)
	for i := range n {
		var err error
		if ports[i], err = freePort(); err == nil {
			routes[i], err = freePort()
		}
		if err != nil {
			return nil, err
		}
	}
	for i := range n {
		nd := &Node{Name: fmt.Sprintf("n%d", i+1), URL: fmt.Sprintf("nats://127.0.0.1:%d", ports[i])}
		nd.conf = filepath.Join(dir, nd.Name+".conf")
		conf := fmt.Sprintf("server_name: %s\nlisten: 127.0.0.1:%d\njetstream { store_dir: %q, sync_interval: %s }\n",
			nd.Name, ports[i], filepath.Join(dir, nd.Name), set.sync)
		if n > 1 {
			var rs []string
			for j := range n {
				if j != i {
					rs = append(rs, fmt.Sprintf("nats-route://127.0.0.1:%d", routes[j]))
				}
			}
			conf += fmt.Sprintf("cluster { name: intake-test, listen: 127.0.0.1:%d, routes: [%s] }\n", routes[i], strings.Join(rs, ", "))
		}
		if err := os.WriteFile(nd.conf, []byte(conf), 0o600); err != nil {
			return nil, err
		}
		c.Nodes = append(c.Nodes, nd)
	}
	for i := range c.Nodes {
		if err := c.StartNode(i); err != nil {
			c.Stop()
			return nil, err
		}
	}
	if err := c.WaitReady(30 * time.Second); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// URLs is every node's client URL, comma separated, as nats.Connect
// takes them.
func (c *Cluster) URLs() string {
	var us []string
	for _, n := range c.Nodes {
		us = append(us, n.URL)
	}
	return strings.Join(us, ",")
}

// StartNode starts node i (again, after Kill) on its files.
func (c *Cluster) StartNode(i int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.Nodes[i]
	n.cmd = exec.Command(c.bin, "-c", n.conf)
	return n.cmd.Start()
}

// Kill SIGKILLs node i: no shutdown, no last sync.
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.Nodes[i]
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	_ = n.cmd.Wait()
	n.cmd = nil
}

// Stop kills every node.
func (c *Cluster) Stop() {
	for i := range c.Nodes {
		c.Kill(i)
	}
}

// WaitReady waits until JetStream answers through every node and, on a
// cluster, until a stream on every node can be made (the meta group
// knows each peer is online: a cluster that has just formed, or a node
// just restarted, refuses with "no suitable peers" until then).
func (c *Cluster) WaitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for _, n := range c.Nodes {
		for {
			err := ready(n.URL, 0)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("natstest: %s not ready after %v: %w", n.Name, limit, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if len(c.Nodes) == 1 {
		return nil
	}
	for {
		err := ready(c.URLs(), len(c.Nodes))
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("natstest: no stream on %d nodes after %v: %w", len(c.Nodes), limit, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ready reports whether JetStream answers at url and, with replicas
// above 0, whether a stream of that many replicas can be made there.
func ready(url string, replicas int) error {
	nc, err := nats.Connect(url, nats.Timeout(time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err = js.AccountInfo(ctx); err != nil || replicas == 0 {
		return err
	}
	name := fmt.Sprintf("NATSTEST_PROBE_%d", time.Now().UnixNano())
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{"natstest.probe." + name}, Replicas: replicas, Storage: jetstream.MemoryStorage}); err != nil {
		return err
	}
	return js.DeleteStream(ctx, name)
}

// Leader returns the index of the node that leads stream name.
func (c *Cluster) Leader(nc *nats.Conn, name string) (int, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, name)
	if err != nil {
		return 0, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, err
	}
	if info.Cluster == nil {
		return 0, errors.New("natstest: the stream has no cluster info")
	}
	for i, n := range c.Nodes {
		if n.Name == info.Cluster.Leader {
			return i, nil
		}
	}
	return 0, fmt.Errorf("natstest: leader %q is not a node of the cluster", info.Cluster.Leader)
}
