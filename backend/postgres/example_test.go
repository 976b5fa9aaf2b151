package postgres_test

import (
	"context"
	"log"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/intakehq/intake"
	"github.com/intakehq/intake/backend/postgres"
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
