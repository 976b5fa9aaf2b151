package nats_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/intakehq/intake"
	intakenats "github.com/intakehq/intake/backend/nats"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/intaketest"
	"github.com/intakehq/intake/internal/testenv"
	"github.com/intakehq/intake/webhook"
)

const secret = "It's a Secret to Everybody"

var subscribers = []string{"ledger", "mail"}

// replica runs one intake replica on the queue name at url: a webhook
// endpoint and two subscriptions, each calling handled(sub, id). It
// returns the endpoint's URL.
func replica(ctx context.Context, url, name string, handled func(sub, id string)) (string, func(), error) {
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		return "", nil, err
	}
	q, err := intakenats.NewQueue(ctx, nc, intakenats.WithName(name), intakenats.WithReplicas(3))
	if err != nil {
		nc.Close()
		return "", nil, err
	}
	s := intake.New(intake.WithQueue(q), intake.WithLogger(quiet), intake.WithQueueSize(4000))
	// The guard off: GitHub's default keys an event by its body, and this
	// test dedupes by the delivery id.
	hook := webhook.New("provider", webhook.GitHub(secret), webhook.WithLogger(quiet), webhook.WithReplayGuard(nil))
	s.Add(hook)
	for _, sub := range subscribers {
		s.Handle(func(_ context.Context, e event.Event) error {
			handled(sub, e.ID)
			return nil
		}, intake.WithName(sub), intake.WithWorkers(8))
	}
	srv := httptest.NewServer(hook)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Run(runCtx)
	}()
	return srv.URL, func() { srv.Close(); cancel(); <-done; q.Close(); nc.Close() }, nil
}

// replicaChild is a replica in a process of its own, killed by the test:
// each handling is one line "sub id" appended to logPath in one write,
// so that a SIGKILL loses none already written.
func replicaChild(url, name, logPath string) error {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	addr, _, err := replica(context.Background(), url, name, func(sub, id string) {
		_, _ = f.WriteString(sub + " " + id + "\n")
	})
	if err != nil {
		return err
	}
	fmt.Println(addr)
	select {}
}

// handlings counts the handlings of each (subscriber, event), with the
// time of the last.
type handlings struct {
	mu   sync.Mutex
	n    map[string]int
	last map[string]time.Time
}

func (h *handlings) add(sub, id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n[sub+" "+id]++
	h.last[sub+" "+id] = time.Now()
}

// TestLeaderKill runs 20,000 events, 30% of them sent twice (to another
// replica), into three intake replicas on an R3 queue of a three-node
// cluster. A third of the way in, the node leading the records stream is
// SIGKILLed, and restarted three seconds later; two thirds of the way
// in, the replica running in a child process is SIGKILLed, and its
// senders go to the others (as a load balancer would send them). Every
// acknowledged event must be handled by each subscriber, once, apart
// from duplicates of the killed replica's ack→commit window (it handled
// an event and died before committing it), which are counted; and the
// killed replica's events must be handled by another within 10 s.
func TestLeaderKill(t *testing.T) {
	testenv.SkipUnlessLong(t)
	if testing.Short() || raceEnabled {
		t.Skip("26,000 requests into a three-node cluster: not in -short, nor under the race detector (the conformance suites and the kill tests run there)")
	}
	c := newCluster(t)
	nc := connect(t, c.URLs(), "the test cluster")
	name := testName(t, nc)
	logPath := filepath.Join(t.TempDir(), "child.log")
	if err := os.WriteFile(logPath, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// The streams exist before the replicas race to make them.
	openQueue(t, nc, intakenats.WithName(name), intakenats.WithReplicas(3)).Close()

	here := &handlings{n: map[string]int{}, last: map[string]time.Time{}}
	var urls []string
	for range 2 {
		u, stop, err := replica(context.Background(), c.URLs(), name, here.add)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
		urls = append(urls, u)
	}
	child, out := intaketest.Child(t, "INTAKE_NATS_CHILD=replica", "INTAKE_NATS_CHILD_URL="+c.URLs(),
		"INTAKE_NATS_CHILD_NAME="+name, "INTAKE_NATS_CHILD_LOG="+logPath)
	childURL := intaketest.FirstLine(t, out, 60*time.Second)
	if !strings.HasPrefix(childURL, "http://") {
		t.Fatalf("child said %q", childURL)
	}
	urls = append(urls, childURL)

	const unique = 20_000
	type job struct {
		id string
		to int
	}
	var jobs []job
	for i := range unique {
		id := fmt.Sprintf("evt_%05d", i)
		jobs = append(jobs, job{id, i % 3})
		if i%10 < 3 {
			jobs = append(jobs, job{id, (i + 1) % 3})
		}
	}
	var (
		ackMu     sync.Mutex
		acked     = map[string]bool{}
		ackedBy   = map[string]map[int]bool{}
		sent      atomic.Int64
		childDead atomic.Bool
		killedAt  time.Time
		failed    atomic.Int64
	)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	post := func(j job) bool {
		to := j.to
		for try := 0; try < 3000; try++ {
			if to == 2 && childDead.Load() {
				to = try % 2
			}
			body := []byte(`{"id":"` + j.id + `"}`)
			req, _ := http.NewRequest(http.MethodPost, urls[to], bytes.NewReader(body))
			req.Header = webhook.SignGitHub(secret, j.id, "push", body)
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK {
					ackMu.Lock()
					acked[j.id] = true
					if ackedBy[j.id] == nil {
						ackedBy[j.id] = map[int]bool{}
					}
					ackedBy[j.id][to] = true
					ackMu.Unlock()
					return true
				}
			}
			time.Sleep(20 * time.Millisecond) // 409 (held elsewhere), 503 (the queue unreachable), a refused connection
		}
		return false
	}

	work := make(chan job)
	var senders sync.WaitGroup
	for range 24 {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for j := range work {
				if !post(j) {
					failed.Add(1)
				}
				sent.Add(1)
			}
		}()
	}
	start := time.Now()
	faults := make(chan struct{})
	go func() {
		defer close(faults)
		for sent.Load() < int64(len(jobs))/3 {
			time.Sleep(10 * time.Millisecond)
		}
		leader, err := c.Leader(nc, name)
		if err != nil {
			t.Errorf("stream leader: %v", err)
			return
		}
		t.Logf("%v: SIGKILL of %s, the leader of stream %s, after %d requests", time.Since(start).Round(time.Millisecond), c.Nodes[leader].Name, name, sent.Load())
		c.Kill(leader)
		time.Sleep(3 * time.Second)
		if err := c.StartNode(leader); err != nil {
			t.Error(err)
			return
		}
		t.Logf("%v: %s restarted", time.Since(start).Round(time.Millisecond), c.Nodes[leader].Name)
		for sent.Load() < 2*int64(len(jobs))/3 {
			time.Sleep(10 * time.Millisecond)
		}
		childDead.Store(true)
		ackMu.Lock()
		killedAt = time.Now()
		ackMu.Unlock()
		_ = child.Process.Kill()
		t.Logf("%v: SIGKILL of the child replica after %d requests", time.Since(start).Round(time.Millisecond), sent.Load())
	}()
	for _, j := range jobs {
		work <- j
	}
	close(work)
	senders.Wait()
	<-faults
	sendTime := time.Since(start)
	if n := failed.Load(); n > 0 {
		t.Errorf("%d requests never acknowledged in 3,000 tries", n)
	}

	// The child's handlings, as its log has them.
	readChild := func() map[string]int {
		b, _ := os.ReadFile(logPath)
		n := map[string]int{}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			n[sc.Text()]++
		}
		return n
	}
	missing := func() []string {
		there := readChild()
		here.mu.Lock()
		defer here.mu.Unlock()
		ackMu.Lock()
		defer ackMu.Unlock()
		var m []string
		for id := range acked {
			for _, sub := range subscribers {
				if k := sub + " " + id; here.n[k]+there[k] == 0 {
					m = append(m, k)
				}
			}
		}
		return m
	}
	for deadline := time.Now().Add(90 * time.Second); len(missing()) > 0 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // let late duplicates show

	lost := missing()
	there := readChild()
	here.mu.Lock()
	defer here.mu.Unlock()
	var explained, unexplained int
	var lastAdopted time.Time
	for id := range acked {
		for _, sub := range subscribers {
			k := sub + " " + id
			if total := here.n[k] + there[k]; total > 1 {
				if there[k] > 0 && here.n[k] > 0 && there[k] == 1 && here.n[k] == 1 {
					explained++ // the child handled it and died before committing it
				} else {
					unexplained++
					if unexplained <= 10 {
						t.Errorf("%s handled %d times here and %d in the killed replica", k, here.n[k], there[k])
					}
				}
			}
			if ackedBy[id][2] && here.last[k].After(killedAt) && here.last[k].After(lastAdopted) {
				lastAdopted = here.last[k] // the killed replica held it (or had handled it and not committed it)
			}
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d acknowledged (subscriber, event) pairs never handled, e.g. %v", len(lost), lost[:min(5, len(lost))])
	}
	adoption := lastAdopted.Sub(killedAt)
	if lastAdopted.IsZero() {
		adoption = 0
	}
	t.Logf("%d unique events acknowledged (%d requests in %v); %d lost; duplicates: %d from the killed replica's ack→commit window, %d unexplained; the killed replica's events all handled by the others %v after the kill",
		len(acked), len(jobs), sendTime.Round(time.Millisecond), len(lost), explained, unexplained, adoption.Round(time.Millisecond))
	if adoption > 10*time.Second {
		t.Errorf("the killed replica's events were handled %v after the kill, want within 10 s", adoption)
	}
	if len(acked) != unique {
		t.Errorf("%d of %d unique events acknowledged", len(acked), unique)
	}
}
