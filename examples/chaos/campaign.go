package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"github.com/intakehq/intake/webhook"
)

// Config is one campaign.
type Config struct {
	Backend   string        // "postgres", "redis", "nats" or "sqlite"
	Seed      uint64        // draws the schedule, the events and the senders' choices
	Duration  time.Duration // the faulty part: events made, faults injected
	Rate      int           // events made a second
	Replicas  int           // intake processes (SQLite: one, a single node)
	Plain     bool          // plain acks even where the backend has a transactional one
	Faults    int           // process and link faults in the schedule
	DBCrashes int           // crashes of the database, beside Faults (not for SQLite)
	Drain     time.Duration // after the faults, how long delivery may take (default 3 min)
	Replica   string        // the program run as a replica (default: this one)
	Dir       string        // the run's directory ("": a temporary one, removed unless Keep)
	Keep      bool
	Log       io.Writer // progress (default: discarded)
}

const prefix = "chaos_"

// campaign is one run's state.
type campaign struct {
	cfg    Config
	dir    string
	hist   *History
	db     server // nil for SQLite
	dbMu   sync.Mutex
	links  *links
	api    *api
	apiURL string
	slots  []*slot
	start  time.Time
	seq    atomic.Int64 // faults numbered
	stuck  int          // events the queue still held when the drain ended
	plan   map[string]string
	planMu sync.Mutex
	log    io.Writer
}

// slot is one replica's place: its port, and its current incarnation.
type slot struct {
	mu   sync.Mutex
	i    int
	inc  int
	port int
	name string
	cmd  *exec.Cmd
	up   bool
}

// Run runs a campaign and checks its history.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Replica == "" {
		cfg.Replica = os.Args[0]
	}
	if cfg.Drain == 0 {
		cfg.Drain = 3 * time.Minute
	}
	if cfg.Backend == "sqlite" {
		cfg.Replicas = 1
	}
	if cfg.Replicas <= 0 || cfg.Rate <= 0 || cfg.Duration <= 0 {
		return nil, fmt.Errorf("chaos: replicas, rate and duration must be positive")
	}
	c := &campaign{cfg: cfg, plan: make(map[string]string), log: cfg.Log}
	if c.log == nil {
		c.log = io.Discard
	}
	c.dir = cfg.Dir
	if c.dir == "" {
		d, err := os.MkdirTemp("", "intake-chaos-")
		if err != nil {
			return nil, err
		}
		c.dir = d
		if !cfg.Keep {
			defer os.RemoveAll(d)
		}
	} else if err := os.MkdirAll(c.dir, 0o755); err != nil {
		return nil, err
	}
	var err error
	if c.hist, err = OpenHistory(filepath.Join(c.dir, "campaign.jsonl"), "campaign"); err != nil {
		return nil, err
	}
	defer c.hist.Close()
	if err := c.setUp(ctx); err != nil {
		return nil, err
	}
	defer c.tearDown()
	if err := c.run(ctx); err != nil {
		return nil, err
	}
	rep, err := c.check()
	if rep != nil {
		rep.Stuck = c.stuck
		if c.stuck > 0 && rep.FirstAnomaly == "" {
			rep.FirstAnomaly = fmt.Sprintf("%d events still held by the queue after the drain", c.stuck)
		}
	}
	return rep, err
}

// setUp starts the database, the links, the polled API and the replicas.
func (c *campaign) setUp(ctx context.Context) error {
	switch c.cfg.Backend {
	case "postgres":
		pg, err := newPostgres(c.dir)
		if err != nil {
			return err
		}
		c.db = pg
		if err := pg.start(); err != nil {
			return err
		}
		conn, err := pgx.Connect(ctx, pg.dsn(pg.addr()))
		if err != nil {
			return err
		}
		_, err = conn.Exec(ctx, `CREATE TABLE `+prefix+`effects (id text NOT NULL, sub text NOT NULL, sum text NOT NULL, proc text NOT NULL)`)
		conn.Close(ctx)
		if err != nil {
			return err
		}
	case "redis":
		r, err := newRedis(c.dir)
		if err != nil {
			return err
		}
		c.db = r
		if err := r.start(); err != nil {
			return err
		}
	case "nats":
		n, err := newNats(c.dir)
		if err != nil {
			return err
		}
		c.db = n
		if err := n.start(); err != nil {
			return err
		}
	case "sqlite":
	default:
		return fmt.Errorf("chaos: unknown backend %q (postgres, redis, nats, sqlite)", c.cfg.Backend)
	}
	if c.db != nil {
		var err error
		if c.links, err = newLinks(c.cfg.Replicas, c.db.addr()); err != nil {
			return err
		}
	}
	c.api = &api{hist: c.hist}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	c.apiURL = "http://" + ln.Addr().String()
	go func() { _ = http.Serve(ln, c.api) }()
	for i := range c.cfg.Replicas {
		port, err := freePort()
		if err != nil {
			return err
		}
		s := &slot{i: i, port: port}
		c.slots = append(c.slots, s)
		if err := c.startSlot(s); err != nil {
			return err
		}
	}
	return nil
}

// dbFor is what replica i is given to reach the database: through its
// link where there is one.
func (c *campaign) dbFor(i int) string {
	switch db := c.db.(type) {
	case *ownPostgres:
		return db.dsn(c.links.addr(i))
	case *ownRedis, *ownNats:
		return c.links.addr(i)
	}
	return filepath.Join(c.dir, "intake.db")
}

// ack is how the replicas ack: "plain", or "tx" where the backend has a
// transactional ack.
func (c *campaign) ack() string {
	if c.cfg.Plain {
		return "plain"
	}
	return "tx"
}

// startSlot starts a new incarnation of replica s and waits until it is
// ready (it waits for its database itself). The caller holds s.mu or
// owns s.
func (c *campaign) startSlot(s *slot) error {
	s.inc++
	s.name = fmt.Sprintf("r%d.%d", s.i, s.inc)
	logf, err := os.OpenFile(filepath.Join(c.dir, fmt.Sprintf("r%d.log", s.i)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(c.cfg.Replica)
	cmd.Env = append(os.Environ(), envRole+"=replica", envBackend+"="+c.cfg.Backend, envDB+"="+c.dbFor(s.i),
		envPrefix+"="+prefix, envAPI+"="+c.apiURL, envAck+"="+c.ack(), envDir+"="+c.dir, envProc+"="+s.name, envPort+"="+strconv.Itoa(s.port))
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case line := <-ready:
		if line != "ready" {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return fmt.Errorf("chaos: replica %s did not start (see %s)", s.name, logf.Name())
		}
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return fmt.Errorf("chaos: replica %s not ready in 90 s (see %s)", s.name, logf.Name())
	}
	s.cmd, s.up = cmd, true
	return nil
}

// run makes the events and sends them while the schedule's faults fall,
// then heals everything, cures the poison and waits for delivery.
func (c *campaign) run(ctx context.Context) error {
	cfg := c.cfg
	schedule := Schedule(cfg.Seed, ScheduleConfig{Duration: cfg.Duration, Faults: cfg.Faults, DBCrashes: cfg.DBCrashes,
		Replicas: cfg.Replicas, Network: c.db != nil})
	c.start = time.Now()
	giveUp := c.start.Add(cfg.Duration + cfg.Drain)
	work := make(chan int, 1<<16)
	senders := c.send(work, giveUp)

	var faults sync.WaitGroup
	var faultErr atomic.Value
	for _, f := range schedule {
		faults.Add(1)
		go func() {
			defer faults.Done()
			select {
			case <-time.After(time.Until(c.start.Add(f.At))):
			case <-ctx.Done():
				return
			}
			if err := c.inject(f); err != nil {
				faultErr.CompareAndSwap(nil, err)
			}
		}()
	}

	// Make Rate events a second for Duration.
	made, said := 0, time.Duration(0)
	tick := time.NewTicker(10 * time.Millisecond)
	for now := range tick.C {
		if ctx.Err() != nil || now.Sub(c.start) >= cfg.Duration {
			break
		}
		for due := int(now.Sub(c.start).Seconds() * float64(cfg.Rate)); made < due; made++ {
			if c.make(made) {
				work <- made
			}
		}
		if since := now.Sub(c.start); since-said >= time.Minute {
			said = since
			fmt.Fprintf(c.log, "%s: %v: %d events made\n", cfg.Backend, since.Round(time.Second), made)
		}
	}
	tick.Stop()
	close(work)
	faults.Wait()
	if err, _ := faultErr.Load().(error); err != nil {
		return err
	}
	healed := time.Now()
	fmt.Fprintf(c.log, "%s: %d events made, %d faults healed; draining\n", cfg.Backend, made, len(schedule))
	if err := os.WriteFile(filepath.Join(c.dir, cureFile), nil, 0o644); err != nil {
		return err
	}

	for {
		st, err := c.status()
		polled := c.api.asked.Load() >= int64(c.api.size())
		if err == nil && closed(senders) && polled && st["queued"] == 0.0 && st["dead"] == 0.0 {
			break
		}
		if time.Now().After(healed.Add(cfg.Drain)) {
			fmt.Fprintf(c.log, "%s: not drained after %v: %v %v, polled %v\n", cfg.Backend, cfg.Drain, st, err, polled)
			if n, ok := st["queued"].(float64); ok {
				c.stuck = int(n)
			}
			if n, ok := st["dead"].(float64); ok {
				c.stuck += int(n)
			}
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	fmt.Fprintf(c.log, "%s: drained in %v\n", cfg.Backend, time.Since(healed).Round(time.Millisecond))
	c.stopReplicas()
	return nil
}

// status asks the replicas, in turn, what the queue holds.
func (c *campaign) status() (map[string]any, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	var errs []error
	for _, s := range c.slots {
		resp, err := client.Get("http://127.0.0.1:" + strconv.Itoa(s.port) + "/status")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var st map[string]any
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err == nil && resp.StatusCode == http.StatusOK {
			return st, nil
		}
		errs = append(errs, fmt.Errorf("%s: %v", resp.Status, err))
	}
	return nil, errors.Join(errs...)
}

// make makes event i: the API lists it from now if it is polled, and it
// reports whether it is sent as a webhook. A quarter are polled first,
// the rest sent; 30% come both ways.
func (c *campaign) make(i int) (hook bool) {
	id, typ, payload := eventOf(c.cfg.Seed, i)
	c.planMu.Lock()
	c.plan[id] = sum(payload)
	c.planMu.Unlock()
	hook, poll := i%4 != 0, i%4 == 0
	if (i*7)%10 < 3 {
		hook, poll = true, true
	}
	if poll {
		c.api.add(apiEvent{ID: id, Type: typ, Payload: payload})
	}
	return hook
}

// eventOf is event i of a seed: an invoice event of some 600 bytes, as
// a payment provider sends.
func eventOf(seed uint64, i int) (id, typ string, payload []byte) {
	rng := rand.New(rand.NewPCG(seed, uint64(i)))
	id = fmt.Sprintf("evt_%08d", i)
	typ = []string{"invoice.created", "invoice.paid", "invoice.payment_failed", "customer.updated"}[rng.IntN(4)]
	words := []string{"annual", "plan", "seat", "usage", "overage", "credit", "tax", "discount", "support", "storage"}
	var desc strings.Builder
	for desc.Len() < 200+rng.IntN(300) {
		desc.WriteString(words[rng.IntN(len(words))])
		desc.WriteByte(' ')
	}
	payload, _ = json.Marshal(map[string]any{
		"id": id, "object": "event", "type": typ, "created": 1764800000 + i,
		"data": map[string]any{"object": map[string]any{
			"id": fmt.Sprintf("in_%08d", i), "customer": fmt.Sprintf("cus_%04d", rng.IntN(5000)),
			"amount_due": rng.IntN(100000), "currency": "eur", "description": strings.TrimSpace(desc.String()),
			"lines": []map[string]any{{"price": "price_" + strconv.Itoa(rng.IntN(50)), "quantity": 1 + rng.IntN(9)}},
		}},
	})
	return id, typ, payload
}

// send runs the provider's senders: 64 at once, each event sent until
// it is answered 2xx (a 5xx, a 409, a timeout or a refused connection is
// tried again, on another replica, after a growing pause), or until
// giveUp. It returns a channel closed when every event has been sent.
func (c *campaign) send(work <-chan int, giveUp time.Time) <-chan struct{} {
	done := make(chan struct{})
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var wg sync.WaitGroup
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				id, _, payload := eventOf(c.cfg.Seed, i)
				h := fnv.New32a()
				h.Write([]byte(id))
				first := int(h.Sum32())
				for attempt := 0; ; attempt++ {
					s := c.slots[(first+attempt)%len(c.slots)]
					status := 0
					req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:"+strconv.Itoa(s.port)+"/hook", bytes.NewReader(payload))
					req.Header = webhook.SignStripe(secret, time.Now(), payload)
					if resp, err := client.Do(req); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						status = resp.StatusCode
					}
					c.hist.Add(Record{Kind: KindSend, ID: id, Status: status, Target: s.name})
					if status == http.StatusOK || status == http.StatusAccepted || time.Now().After(giveUp) {
						break
					}
					time.Sleep(min(50*time.Millisecond<<min(attempt, 6), 2*time.Second))
				}
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	return done
}

// inject puts fault f in force, for its time, and heals it.
func (c *campaign) inject(f Fault) error {
	seq := int(c.seq.Add(1))
	mark := func(kind, target string) {
		c.hist.Add(Record{Kind: kind, Fault: f.Kind, Target: target, Seq: seq})
		if kind == KindFault {
			fmt.Fprintf(c.log, "%s: %v: %s %s for %v\n", c.cfg.Backend, time.Since(c.start).Round(time.Millisecond), f.Kind, target, f.For.Round(time.Millisecond))
		}
	}
	switch f.Kind {
	case FaultKill:
		s := c.slots[f.Target]
		s.mu.Lock()
		defer s.mu.Unlock()
		if !s.up {
			return nil
		}
		name := s.name
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.up = false
		mark(KindFault, name)
		time.Sleep(f.For)
		err := c.startSlot(s)
		mark(KindHeal, name)
		return err
	case FaultPause:
		s := c.slots[f.Target]
		s.mu.Lock()
		if !s.up {
			s.mu.Unlock()
			return nil
		}
		name, proc := s.name, s.cmd.Process
		_ = proc.Signal(syscall.SIGSTOP)
		mark(KindFault, name)
		s.mu.Unlock()
		time.Sleep(f.For)
		_ = proc.Signal(syscall.SIGCONT) // nothing if it was killed meanwhile
		mark(KindHeal, name)
	case FaultDBCrash:
		c.dbMu.Lock()
		defer c.dbMu.Unlock()
		if err := c.db.crash(); err != nil {
			return err
		}
		mark(KindFault, "db")
		time.Sleep(f.For)
		if err := c.db.start(); err != nil {
			return err
		}
		mark(KindHeal, "db")
	default:
		heal, err := c.links.apply(f.Target, f)
		if err != nil {
			return err
		}
		target := fmt.Sprintf("r%d", f.Target)
		mark(KindFault, target)
		time.Sleep(f.For)
		heal()
		mark(KindHeal, target)
	}
	return nil
}

// stopReplicas stops every replica cleanly (SIGTERM: the stream drains
// and gives back what it holds), killing what does not stop in 15 s.
func (c *campaign) stopReplicas() {
	var wg sync.WaitGroup
	for _, s := range c.slots {
		s.mu.Lock()
		if s.up {
			wg.Add(1)
			go func(cmd *exec.Cmd) {
				defer wg.Done()
				_ = cmd.Process.Signal(syscall.SIGTERM)
				t := time.AfterFunc(15*time.Second, func() { _ = cmd.Process.Kill() })
				_ = cmd.Wait()
				t.Stop()
			}(s.cmd)
			s.up = false
		}
		s.mu.Unlock()
	}
	wg.Wait()
}

func (c *campaign) tearDown() {
	c.stopReplicas()
	if c.links != nil {
		c.links.close()
	}
	if c.db != nil {
		c.db.stop()
	}
}

// check reads the histories and the effect rows and checks them.
func (c *campaign) check() (*Report, error) {
	records, err := ReadHistories(c.dir)
	if err != nil {
		return nil, err
	}
	ev := Evidence{Effects: "rows", Subs: subs, Plan: c.plan, Polled: c.api.ids(), Records: records, Window: time.Second, Settle: 2 * time.Second}
	if c.cfg.Plain {
		ev.Effects = "history"
		return Check(ev), nil
	}
	switch db := c.db.(type) {
	case *ownPostgres:
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, db.dsn(db.addr()))
		if err != nil {
			return nil, err
		}
		defer conn.Close(ctx)
		rs, err := conn.Query(ctx, selectEffects)
		if err != nil {
			return nil, err
		}
		defer rs.Close()
		if ev.Rows, err = readRows(rs); err != nil {
			return nil, err
		}
	case *ownRedis, *ownNats:
		ev.Effects = "history"
	default:
		sdb, err := sql.Open("sqlite", filepath.Join(c.dir, "intake.db"))
		if err != nil {
			return nil, err
		}
		defer sdb.Close()
		rs, err := sdb.Query(selectEffects)
		if err != nil {
			return nil, err
		}
		defer rs.Close()
		if ev.Rows, err = readRows(rs); err != nil {
			return nil, err
		}
	}
	return Check(ev), nil
}

const selectEffects = `SELECT id, sub, sum, proc FROM ` + prefix + `effects`

// readRows reads the effect rows of a query, Postgres's or SQLite's.
func readRows(rs interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}) ([]Row, error) {
	var out []Row
	for rs.Next() {
		var r Row
		if err := rs.Scan(&r.ID, &r.Sub, &r.Sum, &r.Proc); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rs.Err()
}

// api is the provider's list API the replicas poll: the polled events
// in the order made, a page of 100 after a cursor (an index). Every page
// served is recorded; a request from a cursor says that every event
// before it was stored (the poller saves a cursor only then).
type api struct {
	mu     sync.Mutex
	events []apiEvent
	hist   *History
	asked  atomic.Int64
}

func (a *api) add(e apiEvent) {
	a.mu.Lock()
	a.events = append(a.events, e)
	a.mu.Unlock()
}

func (a *api) size() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.events)
}

func (a *api) ids() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := make([]string, len(a.events))
	for i, e := range a.events {
		ids[i] = e.ID
	}
	return ids
}

func (a *api) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	after, _ := strconv.Atoi(r.URL.Query().Get("after"))
	a.mu.Lock()
	after = min(max(after, 0), len(a.events))
	to := min(after+100, len(a.events))
	page := apiPage{Events: a.events[after:to], Next: strconv.Itoa(to), More: to < len(a.events)}
	a.mu.Unlock()
	for {
		old := a.asked.Load()
		if int64(after) <= old || a.asked.CompareAndSwap(old, int64(after)) {
			break
		}
	}
	a.hist.Add(Record{Kind: KindPage, From: after, To: to})
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(page)
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
