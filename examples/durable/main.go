// Command durable shows a webhook receiver that survives kill -9: events
// are acknowledged only once they are in an SQLite file, and a restart
// delivers what was acknowledged but not yet handled.
//
// Run the whole demonstration (it starts the receiver as a child process,
// sends it webhooks, kills it with SIGKILL, and starts it again):
//
//	go run ./examples/durable
//
// Or run the receiver alone: go run ./examples/durable -serve -db intake.db
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/sqlite"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/webhook"
)

const secret = "It's a Secret to Everybody"

func main() {
	serve := flag.Bool("serve", false, "run the receiver (otherwise run the demonstration)")
	db := flag.String("db", "", "SQLite file (the demonstration uses a temporary one)")
	addr := flag.String("addr", "127.0.0.1:0", "receiver's listen address")
	n := flag.Int("n", 300, "webhooks the demonstration sends")
	flag.Parse()
	var err error
	if *serve {
		err = receive(*db, *addr)
	} else {
		err = demonstrate(*db, *n)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "durable:", err)
		os.Exit(1)
	}
}

// receive runs the receiver until SIGINT: GitHub-style webhooks into a
// stream on SQLite, handled slowly (20 ms each) so that a backlog builds.
func receive(dbPath, addr string) error {
	store, err := sqlite.Open(dbPath)
	if err != nil {
		return err
	}
	defer store.Close()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	// The default claim lease (30 s): a restart after kill -9 knows its
	// predecessor is gone (its holder lock went with it) and redelivers at once.
	stream := intake.New(intake.WithQueue(store), intake.WithLogger(quiet),
		intake.WithDrainTimeout(time.Second))
	hook := webhook.New("github", webhook.GitHub(secret), webhook.WithLogger(quiet))
	stream.Add(hook)
	stream.Handle(func(ctx context.Context, e event.Event) error {
		time.Sleep(20 * time.Millisecond)
		fmt.Printf("HANDLED %s\n", e.ID)
		return nil
	}, intake.WithWorkers(2))

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: hook, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("LISTENING %s\n", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	err = stream.Run(ctx)
	_ = srv.Close()
	return err
}

type receiver struct {
	cmd     *exec.Cmd
	addr    string
	mu      sync.Mutex
	handled []string
	done    chan struct{}
}

func start(db string) (*receiver, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-serve", "-db", db)
	cmd.Env = append(os.Environ(), "INTAKE_DURABLE_DB="+db) // lets a test binary serve too
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &receiver{cmd: cmd, done: make(chan struct{})}
	lines := bufio.NewScanner(out)
	for lines.Scan() {
		if a, ok := strings.CutPrefix(lines.Text(), "LISTENING "); ok {
			r.addr = a
			break
		}
	}
	if r.addr == "" {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("receiver did not start")
	}
	go func() {
		defer close(r.done)
		for lines.Scan() {
			if id, ok := strings.CutPrefix(lines.Text(), "HANDLED "); ok {
				r.mu.Lock()
				r.handled = append(r.handled, id)
				r.mu.Unlock()
			}
		}
	}()
	return r, nil
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.handled)
}

func send(addr, id string) bool {
	body := []byte(`{"action":"opened","id":"` + id + `"}`)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/", bytes.NewReader(body))
	req.Header = webhook.SignGitHub(secret, id, "issues", body)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}

// demonstrate sends n webhooks to a receiver, kills it with SIGKILL while
// most are still queued, restarts it on the same file, and reports.
func demonstrate(db string, n int) error {
	if db == "" {
		dir, err := os.MkdirTemp("", "intake-durable-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		db = filepath.Join(dir, "intake.db")
	}
	first, err := start(db)
	if err != nil {
		return err
	}
	defer first.cmd.Process.Kill() //nolint:errcheck // no child outlives the demonstration
	acked := map[string]bool{}
	for i := range n {
		id := fmt.Sprintf("delivery-%04d", i)
		for try := 0; try < 50; try++ { // a provider retries a 503 (the stream may be starting)
			if send(first.addr, id) {
				acked[id] = true
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	before := first.count()
	fmt.Printf("sent %d webhooks: %d acknowledged (202), %d handled so far\n", n, len(acked), before)
	_ = first.cmd.Process.Signal(syscall.SIGKILL)
	_ = first.cmd.Wait()
	<-first.done
	fmt.Printf("kill -9: the receiver died with %d acknowledged events not yet handled\n", len(acked)-first.count())

	second, err := start(db)
	if err != nil {
		return err
	}
	defer second.cmd.Process.Kill() //nolint:errcheck
	fmt.Println("restarted on the same file…")
	deadline := time.Now().Add(time.Minute)
	handled := map[string]bool{}
	for time.Now().Before(deadline) {
		second.mu.Lock()
		for _, id := range append(first.handled, second.handled...) {
			handled[id] = true
		}
		second.mu.Unlock()
		if len(handled) >= len(acked) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = second.cmd.Process.Signal(os.Interrupt)
	_ = second.cmd.Wait()
	<-second.done
	missing := 0
	for id := range acked {
		if !handled[id] {
			missing++
		}
	}
	fmt.Printf("after the restart: %d more handled; %d of %d acknowledged events handled in all, %d lost\n",
		second.count(), len(acked)-missing, len(acked), missing)
	if missing > 0 {
		return fmt.Errorf("%d acknowledged events lost", missing)
	}
	return nil
}
