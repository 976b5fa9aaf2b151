package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/sqlite"
	"github.com/intakehq/intake/event"
)

// A stream whose queue is an SQLite file: what Put accepted is on disk
// before Put returns, and the key stays done after a restart.
func Example() {
	dir, _ := os.MkdirTemp("", "intake-example-")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "intake.db")
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	for run := 1; run <= 2; run++ {
		db, err := sqlite.Open(path)
		if err != nil {
			fmt.Println(err)
			return
		}
		stream := intake.New(intake.WithQueue(db), intake.WithLogger(quiet))
		deliveries := stream.Subscribe()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- stream.Run(ctx) }()

		e := event.Event{Source: "shop", ID: "order_1", Type: "order.paid"}
		err = stream.Put(ctx, e)
		for errors.Is(err, event.ErrNotRunning) {
			time.Sleep(time.Millisecond)
			err = stream.Put(ctx, e)
		}
		if err == nil {
			d := <-deliveries
			d.Ack()
			fmt.Printf("run %d: delivered %s\n", run, d.Event.ID)
		} else {
			fmt.Printf("run %d: duplicate: %v\n", run, errors.Is(err, event.ErrDuplicate))
		}
		cancel()
		<-done
		db.Close()
	}
	// Output:
	// run 1: delivered order_1
	// run 2: duplicate: true
}

// A handler whose effect is a row in the application's own table, in the
// same SQLite file: the row and the ack commit in one transaction, so the
// order is inserted once whatever crashes or retries do.
func ExampleBackend_HandleTx() {
	dir, _ := os.MkdirTemp("", "intake-example-")
	defer os.RemoveAll(dir)
	q, err := sqlite.Open(filepath.Join(dir, "shop.db"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer q.Close()
	if _, err := q.DB().Exec(`CREATE TABLE orders (event_id TEXT PRIMARY KEY, body BLOB)`); err != nil {
		fmt.Println(err)
		return
	}
	stream := intake.New(intake.WithQueue(q), intake.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	stream.Handle(q.HandleTx(func(ctx context.Context, tx *sql.Tx, e event.Event) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO orders (event_id, body) VALUES (?, ?)`, e.ID, e.Payload)
		return err // an error rolls the row back, and the event is retried
	}), intake.WithName("orders"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- stream.Run(ctx) }()
	e := event.Event{Source: "shop", ID: "order_1", Type: "order.paid", Payload: []byte(`{"total":42}`)}
	err = stream.Put(ctx, e)
	for errors.Is(err, event.ErrNotRunning) {
		time.Sleep(time.Millisecond)
		err = stream.Put(ctx, e)
	}
	cancel() // Run drains the queue: the handler's transaction commits before it returns
	fmt.Println(<-done)
	var n int
	_ = q.DB().QueryRow(`SELECT count(*) FROM orders`).Scan(&n)
	fmt.Println("rows:", n)
	// Output:
	// <nil>
	// rows: 1
}
