package nats_test

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
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// serverVersion is the nats-server the cluster tests run: a current
// release (the one the module proxy serves), not whatever a distribution
// installed.
const serverVersion = "v2.15.3"

var (
	serverOnce sync.Once
	serverBin  string
	serverErr  error
)

// natsServer returns the path of nats-server serverVersion: the binary
// INTAKE_NATS_SERVER names, or one built once with go install into the
// user's cache (about a minute, the first time on a machine).
func natsServer(t testing.TB) string {
	t.Helper()
	serverOnce.Do(func() {
		if p := os.Getenv("INTAKE_NATS_SERVER"); p != "" {
			serverBin = p
			return
		}
		dir, err := os.UserCacheDir()
		if err != nil {
			serverErr = err
			return
		}
		dir = filepath.Join(dir, "intake", "nats-server-"+serverVersion)
		serverBin = filepath.Join(dir, "nats-server")
		if _, err := os.Stat(serverBin); err == nil {
			return
		}
		cmd := exec.Command("go", "install", "github.com/nats-io/nats-server/v2@"+serverVersion)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOWORK=off", "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			serverErr = fmt.Errorf("go install nats-server %s: %v: %s", serverVersion, err, out)
		}
	})
	if serverErr != nil {
		skipOrFail(t, serverErr.Error()+"; set INTAKE_NATS_SERVER to a nats-server binary (2.11 or later)")
	}
	return serverBin
}

// node is one nats-server of a test cluster.
type node struct {
	name, conf, url string
	cmd             *exec.Cmd
}

// cluster is three nats-server processes of the test's own, routed on
// loopback, each with JetStream syncing every write to disk.
type cluster struct {
	t     testing.TB
	bin   string
	nodes []*node
	mu    sync.Mutex
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newCluster starts a three-node cluster and waits until JetStream
// answers on it; the nodes are killed when the test ends.
func newCluster(t testing.TB) *cluster {
	t.Helper()
	c := &cluster{t: t, bin: natsServer(t)}
	dir := t.TempDir()
	ports, routes := make([]int, 3), make([]int, 3)
	for i := range 3 {
		ports[i], routes[i] = freePort(t), freePort(t)
	}
	for i := range 3 {
		var rs []string
		for j := range 3 {
			if j != i {
				rs = append(rs, fmt.Sprintf("nats-route://127.0.0.1:%d", routes[j]))
			}
		}
		n := &node{name: fmt.Sprintf("n%d", i+1), url: fmt.Sprintf("nats://127.0.0.1:%d", ports[i])}
		n.conf = filepath.Join(dir, n.name+".conf")
		conf := fmt.Sprintf(`server_name: %s
listen: 127.0.0.1:%d
jetstream { store_dir: %q, sync_interval: always }
cluster { name: intake-test, listen: 127.0.0.1:%d, routes: [%s] }
`, n.name, ports[i], filepath.Join(dir, n.name), routes[i], strings.Join(rs, ", "))
		if err := os.WriteFile(n.conf, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, n)
	}
	for i := range c.nodes {
		c.start(i)
	}
	t.Cleanup(func() {
		for i := range c.nodes {
			c.kill(i)
		}
	})
	c.waitReady()
	return c
}

// urls is every node's client URL, comma separated.
func (c *cluster) urls() string {
	var us []string
	for _, n := range c.nodes {
		us = append(us, n.url)
	}
	return strings.Join(us, ",")
}

func (c *cluster) start(i int) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[i]
	n.cmd = exec.Command(c.bin, "-c", n.conf)
	if err := n.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
}

// kill SIGKILLs node i: no shutdown, no last sync.
func (c *cluster) kill(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[i]
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	_ = n.cmd.Wait()
	n.cmd = nil
}

// waitReady waits until JetStream answers through every node.
func (c *cluster) waitReady() {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range c.nodes {
		for {
			err := jsReady(n.url)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("%s not ready after 30 s: %v", n.name, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

func jsReady(url string) error {
	nc, err := nats.Connect(url, nats.Timeout(time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err
}

// leader returns the index of the node that leads stream name.
func (c *cluster) leader(nc *nats.Conn, name string) (int, error) {
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
		return 0, errors.New("stream has no cluster info")
	}
	for i, n := range c.nodes {
		if n.name == info.Cluster.Leader {
			return i, nil
		}
	}
	return 0, fmt.Errorf("leader %q is not a node of the cluster", info.Cluster.Leader)
}
