package postgres_test

import (
	"context"
	"errors"
	"log"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/postgres"
	"github.com/intakehq/intake/dedupe"
	"github.com/intakehq/intake/event"
	"github.com/intakehq/intake/poller"
)

// Each replica opens its own Backend on the shared database: the stream
// keeps its queue there, and the poller's cursor and lease too.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:5432/test")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	pg, err := postgres.New(ctx, pool)
	if err != nil {
		log.Fatal(err)
	}
	stream := intake.New(intake.WithQueue(pg))
	fetch := poller.FetchFunc(func(ctx context.Context, cursor string) (poller.Page, error) { return poller.Page{}, nil })
	stream.Add(poller.New("stripe", fetch,
		poller.WithCheckpoint(pg.Checkpoint()),
		poller.WithLease(pg.Lease(), 30*time.Second)))
	stream.Handle(func(ctx context.Context, e event.Event) error { return nil })
	_ = stream.Run // run it until shutdown: stream.Run(ctx)
}

// A handler whose effect is a row in the application's own table: the row
// and the ack commit in one transaction, so each order is inserted once,
// whatever crashes, retries or replicas do.
func ExampleBackend_HandleTx() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:5432/test")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	pg, err := postgres.New(ctx, pool)
	if err != nil {
		log.Fatal(err)
	}
	stream := intake.New(intake.WithQueue(pg))
	stream.Handle(pg.HandleTx(func(ctx context.Context, tx pgx.Tx, e event.Event) error {
		_, err := tx.Exec(ctx, `INSERT INTO orders (event_id, body) VALUES ($1, $2)`, e.ID, e.Payload)
		return err // an error rolls the row back, and the event is retried
	}), intake.WithName("orders"))
	_ = stream.Run // run it until shutdown: stream.Run(ctx)
}

// The same with a subscription channel: begin, AckTx (first: an event
// already acked is then not written again), write, commit, Ack.
func ExampleBackend_AckTx() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, "postgres://postgres@127.0.0.1:5432/test")
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	pg, err := postgres.New(ctx, pool)
	if err != nil {
		log.Fatal(err)
	}
	stream := intake.New(intake.WithQueue(pg))
	deliveries := stream.Subscribe(intake.WithName("orders"))
	handle := func(d *intake.Delivery) error {
		tx, err := pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op
		switch err := pg.AckTx(ctx, tx, d); {
		case errors.Is(err, dedupe.ErrAlreadyAcked):
			return nil // a transaction that committed did it already
		case err != nil:
			return err // ErrNotHeld: another replica has the event now
		}
		if _, err := tx.Exec(ctx, `INSERT INTO orders (event_id, body) VALUES ($1, $2)`, d.Event.ID, d.Event.Payload); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}
	go func() {
		for d := range deliveries {
			if err := handle(d); err != nil {
				d.Nack(err)
				continue
			}
			d.Ack()
		}
	}()
	_ = stream.Run // run it until shutdown: stream.Run(ctx)
}
