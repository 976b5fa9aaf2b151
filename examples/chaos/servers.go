package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/jackc/pgx/v5"

	"github.com/intakehq/intake/backend/nats/natstest"
	goredis "github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
)

// A server is a database the campaign owns, so that it can crash it.
type server interface {
	addr() string // host:port
	start() error // (re)start and wait until it answers
	crash() error // SIGKILL every process of it
	stop()        // the end
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// group is a server's processes, started in a process group of their
// own so that a crash kills them all at once, as a machine's crash would.
type group struct{ cmd *exec.Cmd }

func (g *group) crash() error {
	if g.cmd == nil {
		return nil
	}
	err := syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
	_ = g.cmd.Wait()
	g.cmd = nil
	return err
}

func (g *group) stop() { _ = g.crash() }

// waitReady calls probe until it answers nil, for a minute at most.
func waitReady(what, log string, probe func(context.Context) error) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := probe(ctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chaos: %s did not answer in 60 s (see %s): %w", what, log, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ownPostgres is a Postgres instance of the campaign's own: initdb'd in
// its directory, run as the postgres user when the campaign is root
// (Postgres refuses root), fsync and synchronous_commit on; a crash kills
// the postmaster and every backend at once.
type ownPostgres struct {
	group
	dir, bin string
	port     int
	cred     *syscall.Credential
	log      *os.File
}

func newPostgres(root string) (*ownPostgres, error) {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Strings(bins)
	bin := ""
	if len(bins) > 0 {
		bin = filepath.Dir(bins[len(bins)-1])
	} else if p, err := exec.LookPath("initdb"); err == nil {
		bin = filepath.Dir(p)
	} else {
		return nil, errors.New("chaos: no initdb (install postgresql)")
	}
	p := &ownPostgres{dir: filepath.Join(root, "pg"), bin: bin}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return nil, err
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("chaos: Postgres refuses to run as root and there is no postgres user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		for _, d := range []string{root, p.dir} {
			if err := os.Chmod(d, 0o755); err != nil {
				return nil, err
			}
		}
		if err := os.Chown(p.dir, uid, gid); err != nil {
			return nil, err
		}
	}
	init := exec.Command(filepath.Join(bin, "initdb"), "-D", p.dir, "-U", "postgres", "-A", "trust", "-N")
	init.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	if out, err := init.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("chaos: initdb: %v: %s", err, out)
	}
	var err error
	if p.port, err = freePort(); err != nil {
		return nil, err
	}
	if p.log, err = os.Create(filepath.Join(root, "postgres.log")); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *ownPostgres) addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }

func (p *ownPostgres) dsn(addr string) string {
	return "postgres://postgres@" + addr + "/postgres?sslmode=disable&connect_timeout=5"
}

func (p *ownPostgres) start() error {
	cmd := exec.Command(filepath.Join(p.bin, "postgres"), "-D", p.dir, "-p", strconv.Itoa(p.port), "-k", p.dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=on", "-c", "synchronous_commit=on",
		"-c", "max_connections=300", "-c", "shared_buffers=64MB")
	cmd.Stdout, cmd.Stderr = p.log, p.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: p.cred, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	p.cmd = cmd
	return waitReady("postgres", p.log.Name(), func(ctx context.Context) error {
		c, err := pgx.Connect(ctx, p.dsn(p.addr()))
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		return c.Ping(ctx)
	})
}

// ownRedis is a Redis of the campaign's own with AOF and appendfsync
// always: what the Redis queue's durability needs.
type ownRedis struct {
	group
	dir  string
	port int
	log  *os.File
}

func newRedis(root string) (*ownRedis, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, errors.New("chaos: no redis-server (install redis-server)")
	}
	r := &ownRedis{dir: filepath.Join(root, "redis")}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return nil, err
	}
	var err error
	if r.port, err = freePort(); err != nil {
		return nil, err
	}
	if r.log, err = os.Create(filepath.Join(root, "redis.log")); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *ownRedis) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func (r *ownRedis) start() error {
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no", "--loglevel", "warning")
	cmd.Stdout, cmd.Stderr = r.log, r.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	r.cmd = cmd
	c := goredis.NewClient(&goredis.Options{Addr: r.addr(), MaxRetries: -1})
	defer c.Close()
	return waitReady("redis", r.log.Name(), func(ctx context.Context) error { return c.Ping(ctx).Err() })
}

// links are the toxiproxy links between the replicas and the database,
// one a replica slot, run in this process.
type links struct {
	mu      sync.Mutex
	proxies []*toxiproxy.Proxy
	parted  []int // partitions in force, per link
	seq     int
}

func newLinks(n int, upstream string) (*links, error) {
	zerolog.SetGlobalLevel(zerolog.Disabled) // toxiproxy logs through zerolog's global logger
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	l := &links{parted: make([]int, n)}
	for i := range n {
		p := toxiproxy.NewProxy(srv, fmt.Sprintf("r%d", i), "127.0.0.1:0", upstream)
		if err := srv.Collection.Add(p, true); err != nil {
			return nil, err
		}
		l.proxies = append(l.proxies, p)
	}
	return l, nil
}

func (l *links) addr(i int) string { return l.proxies[i].Listen }

// apply puts fault f on link i and returns what heals it.
func (l *links) apply(i int, f Fault) (heal func(), err error) {
	p := l.proxies[i]
	if f.Kind == FaultPartition {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.parted[i]++
		p.Stop()
		return func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			if l.parted[i]--; l.parted[i] == 0 {
				_ = p.Start()
			}
		}, nil
	}
	var typ, attrs string
	switch f.Kind {
	case FaultLatency:
		typ, attrs = "latency", fmt.Sprintf(`{"latency":%d,"jitter":%d}`, f.Level, f.Level/2)
	case FaultTimeout:
		typ, attrs = "timeout", fmt.Sprintf(`{"timeout":%d}`, f.Level)
	case FaultReset:
		typ, attrs = "reset_peer", fmt.Sprintf(`{"timeout":%d}`, f.Level)
	case FaultBandwidth:
		typ, attrs = "bandwidth", fmt.Sprintf(`{"rate":%d}`, f.Level)
	case FaultLimit:
		typ, attrs = "limit_data", fmt.Sprintf(`{"bytes":%d}`, f.Level)
	default:
		return nil, fmt.Errorf("chaos: %q is not a link fault", f.Kind)
	}
	l.mu.Lock()
	l.seq++
	var names []string
	for _, stream := range []string{"upstream", "downstream"} {
		name := fmt.Sprintf("%s-%d-%s", typ, l.seq, stream)
		spec := fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"toxicity":1,"attributes":%s}`, name, typ, stream, attrs)
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(spec)); err != nil {
			l.mu.Unlock()
			return nil, err
		}
		names = append(names, name)
	}
	l.mu.Unlock()
	return func() {
		for _, name := range names {
			_ = p.Toxics.RemoveToxic(context.Background(), name)
		}
	}, nil
}

func (l *links) close() {
	for _, p := range l.proxies {
		p.Stop()
	}
}

// ownNats is a nats-server of the campaign's own (natstest's version),
// one node with JetStream syncing every write (sync_interval: always):
// what the JetStream queue's durability needs.
type ownNats struct {
	dir string
	c   *natstest.Cluster
}

func newNats(root string) (*ownNats, error) {
	dir := filepath.Join(root, "nats")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &ownNats{dir: dir}, nil
}

func (n *ownNats) addr() string { return strings.TrimPrefix(n.c.Nodes[0].URL, "nats://") }

func (n *ownNats) start() error {
	if n.c == nil {
		bin, err := natstest.Binary()
		if err != nil {
			return err
		}
		n.c, err = natstest.Start(bin, n.dir, 1)
		return err
	}
	if err := n.c.StartNode(0); err != nil {
		return err
	}
	return n.c.WaitReady(60 * time.Second)
}

func (n *ownNats) crash() error {
	n.c.Kill(0)
	return nil
}

func (n *ownNats) stop() {
	if n.c != nil {
		n.c.Stop()
	}
}
